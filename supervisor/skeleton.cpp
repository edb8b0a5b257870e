#include "supervisor/detail/skeleton.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "common/fd.hpp"
#include "common/registry.hpp"
#include "common/sys.hpp"

namespace supervisor::detail {
namespace {

using common::fail;
using common::Result;
using common::UniqueFd;

// Bump when the skeleton's layout changes, so old versions are not reused.
constexpr std::uint64_t kFormat = 1;
constexpr off_t kMaxFile = 8 << 20;
constexpr int kMaxDepth = 8;
// Unused versions are pruned once they are this old.
constexpr time_t kPruneAfterSeconds = 600;

struct Digest {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  void add(const void* p, size_t n) {
    auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
  template <class T>
  void add_value(T v) {
    add(&v, sizeof v);
  }
  void add_stat_of(const struct stat& st) {
    for (auto v : {std::uint64_t(st.st_mode), std::uint64_t(st.st_size), std::uint64_t(st.st_ino),
                   std::uint64_t(st.st_dev), std::uint64_t(st.st_mtim.tv_sec),
                   std::uint64_t(st.st_mtim.tv_nsec), std::uint64_t(st.st_ctim.tv_nsec)})
      add_value(v);
  }
  // The entry itself and, for a symlink, its target and what it points to.
  void add_stat(const std::string& path) {
    add(path);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      add_value(-1);
      return;
    }
    add_stat_of(st);
    if (!S_ISLNK(st.st_mode)) return;
    char target[PATH_MAX];
    ssize_t n = ::readlink(path.c_str(), target, sizeof target);
    if (n > 0) add(target, static_cast<size_t>(n));
    if (::stat(path.c_str(), &st) == 0) add_stat_of(st);
  }
};

}  // namespace

// What the skeleton is made from: the entries, and the directories whose mtime changes when a
// file in them is replaced (package managers and update-ca-certificates rename into place).
std::string skeleton_version(const std::string& etc) {
  Digest d;
  d.add_value(kFormat);
  for (const char* e : skeleton_etc_entries()) d.add_stat(etc + "/" + e);
  for (const char* e : {"/ssl/certs", "/ld.so.conf.d"}) d.add_stat(etc + e);
  // A few small files edited in place. Listed with getdents64 into the stack: opendir's 32 KiB
  // buffer grew the heap and glibc gave it back on closedir, a launch's ~20 us in brk and faults.
  const std::string conf_d = etc + "/ld.so.conf.d/";
  UniqueFd dir{sys::open(conf_d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  alignas(dirent64) char buf[4096];
  ssize_t n;
  while (dir && (n = ::getdents64(dir.get(), buf, sizeof buf)) > 0)
    for (ssize_t at = 0; at < n;) {
      auto* e = reinterpret_cast<const dirent64*>(buf + at);
      at += e->d_reclen;
      // Not "." (stat above) nor "..": that is etc itself, whose times change with any of its
      // entries (a DHCP client replacing resolv.conf), and would rebuild the skeleton for none.
      const std::string_view name = e->d_name;
      if (name != "." && name != "..") d.add_stat(conf_d + e->d_name);
    }
  for (const char* n : skeleton_dev_nodes()) d.add(n);
  return fmt::format("{:016x}", d.h);
}

namespace {

Result<void> copy_file(const std::string& from, const std::string& to, off_t size) {
  if (size > kMaxFile) return {};  // not a config file: leave it out
  UniqueFd in{sys::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)};
  if (!in) return errno == EACCES ? Result<void>{} : fail(errno, "open '{}'", from);
  UniqueFd out{sys::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
  if (!out) return fail(errno, "create '{}'", to);
  char buf[65536];
  ssize_t n;
  while ((n = sys::read(in.get(), buf, sizeof buf)) > 0)
    if (!sys::write_all(out.get(), buf, static_cast<size_t>(n)))
      return fail(errno, "write '{}'", to);
  if (n < 0) return fail(errno, "read '{}'", from);
  return {};
}

// Copies files, directories and symlinks (as links) from the host. Private material (mode
// without world read, like /etc/ssl/private) is skipped.
Result<void> copy_tree(const std::string& from, const std::string& to, int depth) {
  struct stat st;
  if (::lstat(from.c_str(), &st) != 0) return {};
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = ::readlink(from.c_str(), target, sizeof target - 1);
    if (n < 0) return fail(errno, "readlink '{}'", from);
    target[n] = '\0';
    if (::symlink(target, to.c_str()) != 0) return fail(errno, "symlink '{}'", to);
    return {};
  }
  if ((st.st_mode & S_IROTH) == 0) return {};
  if (S_ISREG(st.st_mode)) return copy_file(from, to, st.st_size);
  if (!S_ISDIR(st.st_mode) || depth > kMaxDepth) return {};
  if (::mkdir(to.c_str(), 0755) != 0) return fail(errno, "mkdir '{}'", to);
  DIR* dir = ::opendir(from.c_str());
  if (dir == nullptr) return fail(errno, "open '{}'", from);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(dir);
  for (auto& n : names) TRY(copy_tree(from + "/" + n, to + "/" + n, depth + 1));
  return {};
}

Result<void> build(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0) return fail(errno, "mkdir '{}'", dir);
  std::string etc = dir + "/etc", dev = dir + "/dev";
  if (::mkdir(etc.c_str(), 0755) != 0) return fail(errno, "mkdir '{}'", etc);
  for (const char* e : skeleton_etc_entries())
    TRY(copy_tree(std::string("/etc/") + e, etc + "/" + e, 0));
  if (::mkdir(dev.c_str(), 0755) != 0) return fail(errno, "mkdir '{}'", dev);
  // Empty files: mount points for the host's device nodes, bound per jail.
  for (const char* n : skeleton_dev_nodes()) {
    UniqueFd f{sys::open((dev + "/" + n).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
    if (!f) return fail(errno, "create '{}/{}'", dev, n);
  }
  const std::pair<const char*, const char*> links[] = {
      {"fd", "/proc/self/fd"},
      {"stdin", "/proc/self/fd/0"},
      {"stdout", "/proc/self/fd/1"},
      {"stderr", "/proc/self/fd/2"},
      {"shm", "/tmp"},  // POSIX shared memory lives in the jail's size-limited /tmp
  };
  for (auto& [name, target] : links)
    if (::symlink(target, (dev + "/" + name).c_str()) != 0)
      return fail(errno, "symlink '{}'", name);
  return {};
}

void prune(const std::string& base, const std::string& keep) {
  DIR* dir = ::opendir(base.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> old;
  time_t now = ::time(nullptr);
  while (dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || n == keep) continue;
    struct stat st;
    std::string p = base + "/" + n;
    if (::lstat(p.c_str(), &st) == 0 && now - st.st_mtime > kPruneAfterSeconds) old.push_back(p);
  }
  ::closedir(dir);
  std::error_code ec;
  // Best effort: a version still bound in a running jail stays usable there once unlinked.
  for (auto& p : old) (void)std::filesystem::remove_all(p, ec);
}

}  // namespace

const std::vector<const char*>& skeleton_etc_entries() {
  static const std::vector<const char*> kEntries = {
      "passwd",       "group",      "hosts",     "nsswitch.conf", "ld.so.cache", "ld.so.conf",
      "ld.so.conf.d", "protocols",  "services",  "localtime",     "os-release",  "alternatives",
      "ssl",          "mime.types", "host.conf", "gai.conf",
  };
  return kEntries;
}

const std::vector<const char*>& skeleton_dev_nodes() {
  static const std::vector<const char*> kNodes = {"null", "zero", "full", "random", "urandom"};
  return kNodes;
}

std::string default_skeleton_base() { return "/run/stockade/skel"; }

Result<std::string> ensure_skeleton(const std::string& base) {
  TRY_CTX(common::registry::ensure_dir(base), "skeleton");
  std::string dir = base + "/" + skeleton_version("/etc");
  struct stat st;
  if (::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return dir;
  unsigned char r[6] = {};
  (void)sys::getrandom(r, sizeof r);  // only names a scratch directory
  std::string tmp =
      fmt::format("{}/.build-{}-{:02x}{:02x}{:02x}", base, ::getpid(), r[0], r[1], r[2]);
  auto built = build(tmp);
  std::error_code ec;
  if (!built) {
    (void)std::filesystem::remove_all(tmp, ec);  // best effort, the error below says why
    return std::unexpected(common::context(built.error(), "build the skeleton"));
  }
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    int err = errno;
    (void)std::filesystem::remove_all(tmp, ec);  // another supervisor won the race: use theirs
    if (err != EEXIST && err != ENOTEMPTY) return fail(err, "build the skeleton: rename '{}'", dir);
  }
  prune(base, dir.substr(base.size() + 1));
  return dir;
}

}  // namespace supervisor::detail
