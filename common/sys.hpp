// Each syscall the project needs, wrapped once: EINTR retried, missing libc wrappers supplied.
// All functions here are async-signal-safe (plain syscalls, no allocation) unless noted.
#pragma once

#include <linux/openat2.h>
#include <linux/sched.h>
#include <sys/mount.h>
#include <sys/types.h>

#include <csignal>
#include <cstddef>
#include <cstdint>

namespace sys {

// Returns -1 with errno set on failure, like libc.
int openat2(int dirfd, const char* path, std::uint64_t flags, std::uint64_t mode,
            std::uint64_t resolve);
pid_t clone3(struct clone_args* args);
int pidfd_send_signal(int pidfd, int sig);
int pidfd_open(pid_t pid);
int close_range(unsigned first, unsigned last, unsigned flags);
int pivot_root(const char* new_root, const char* put_old);
// The ids of the calling thread, by the raw syscalls. glibc's wrappers signal every thread it
// knows of to change with it; in a child cloned (clone3) from a threaded process those threads
// do not exist and the wrapper waits for them forever. The child is single-threaded: changing
// the calling thread changes it all.
int setgroups_empty();
int setresgid(gid_t r, gid_t e, gid_t s);
int setresuid(uid_t r, uid_t e, uid_t s);
int open_tree(int dirfd, const char* path, unsigned flags);
int move_mount(int from_dirfd, const char* from_path, int to_dirfd, const char* to_path,
               unsigned flags);
int mount_setattr(int dirfd, const char* path, unsigned flags, std::uint64_t attr_set,
                  std::uint64_t attr_clr);
int seccomp_set_filter(unsigned flags, const void* sock_fprog);
ssize_t read(int fd, void* buf, size_t len);
ssize_t write(int fd, const void* buf, size_t len);
// Writes all of buf or fails.
bool write_all(int fd, const void* buf, size_t len);
pid_t waitpid(pid_t pid, int* status, int options);
int open(const char* path, int flags, mode_t mode = 0);
int openat(int dirfd, const char* path, int flags, mode_t mode = 0);
// Fills buf with random bytes from the kernel's pool.
bool getrandom(void* buf, size_t len);

}  // namespace sys
