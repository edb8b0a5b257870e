#include "common/sys.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace sys {

// glibc 2.36 has no wrapper for openat2, clone3, pidfd_send_signal or seccomp's filter flags.
int openat2(int dirfd, const char* path, std::uint64_t flags, std::uint64_t mode,
            std::uint64_t resolve) {
  struct open_how how {};
  how.flags = flags;
  how.mode = mode;
  how.resolve = resolve;
  long r;
  do r = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  while (r < 0 && errno == EINTR);
  return static_cast<int>(r);
}

pid_t clone3(struct clone_args* args) {
  return static_cast<pid_t>(::syscall(SYS_clone3, args, sizeof *args));
}

int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int close_range(unsigned first, unsigned last, unsigned flags) {
  return static_cast<int>(::syscall(SYS_close_range, first, last, flags));
}

int setgroups_empty() { return static_cast<int>(::syscall(SYS_setgroups, 0, nullptr)); }

int setresgid(gid_t r, gid_t e, gid_t s) {
  return static_cast<int>(::syscall(SYS_setresgid, r, e, s));
}

int setresuid(uid_t r, uid_t e, uid_t s) {
  return static_cast<int>(::syscall(SYS_setresuid, r, e, s));
}

int pivot_root(const char* new_root, const char* put_old) {
  return static_cast<int>(::syscall(SYS_pivot_root, new_root, put_old));
}

int open_tree(int dirfd, const char* path, unsigned flags) {
  return static_cast<int>(::syscall(SYS_open_tree, dirfd, path, flags));
}

int move_mount(int from_dirfd, const char* from_path, int to_dirfd, const char* to_path,
               unsigned flags) {
  return static_cast<int>(
      ::syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags));
}

int mount_setattr(int dirfd, const char* path, unsigned flags, std::uint64_t attr_set,
                  std::uint64_t attr_clr) {
  struct mount_attr attr {};
  attr.attr_set = attr_set;
  attr.attr_clr = attr_clr;
  return static_cast<int>(::syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof attr));
}

int seccomp_set_filter(unsigned flags, const void* prog) {
  return static_cast<int>(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog));
}

ssize_t read(int fd, void* buf, size_t len) {
  ssize_t r;
  do r = ::read(fd, buf, len);
  while (r < 0 && errno == EINTR);
  return r;
}

ssize_t write(int fd, const void* buf, size_t len) {
  ssize_t r;
  do r = ::write(fd, buf, len);
  while (r < 0 && errno == EINTR);
  return r;
}

bool write_all(int fd, const void* buf, size_t len) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t r = write(fd, p, len);
    if (r <= 0) return false;
    p += r;
    len -= static_cast<size_t>(r);
  }
  return true;
}

pid_t waitpid(pid_t pid, int* status, int options) {
  pid_t r;
  do r = ::waitpid(pid, status, options);
  while (r < 0 && errno == EINTR);
  return r;
}

int open(const char* path, int flags, mode_t mode) {
  int r;
  do r = ::open(path, flags, mode);
  while (r < 0 && errno == EINTR);
  return r;
}

int openat(int dirfd, const char* path, int flags, mode_t mode) {
  int r;
  do r = ::openat(dirfd, path, flags, mode);
  while (r < 0 && errno == EINTR);
  return r;
}

bool getrandom(void* buf, size_t len) {
  auto* p = static_cast<unsigned char*>(buf);
  while (len > 0) {
    ssize_t r = ::getrandom(p, len, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += r;
    len -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace sys
