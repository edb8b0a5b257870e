// make_plan: the parent turns a JailSpec into the child's plan, resolving host paths first.
#include "supervisor/detail/plan.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "common/fd.hpp"
#include "supervisor/detail/skeleton.hpp"

namespace supervisor::detail {
namespace {

using common::fail;
using common::Result;

constexpr std::uint64_t kRoAttr = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

// Without the skeleton (rootless runs, or user mounts inside /etc or /dev) each jail gets the
// same /etc and /dev built in place: small regular files copied, directories bound read-only.
constexpr off_t kMaxCopiedFile = 256 * 1024;
// Top-level system directories; on a merged-/usr host most are symlinks into /usr.
constexpr const char* kSystemDirs[] = {"bin", "sbin", "lib", "lib64", "lib32", "libx32"};
// As OCI runtimes do: kernel knobs read-only, kernel internals hidden.
constexpr const char* kProcReadOnly[] = {"sys", "sysrq-trigger"};
constexpr const char* kProcMaskFiles[] = {"kcore", "keys", "timer_list", "latency_stats",
                                          "sched_debug"};
constexpr const char* kProcMaskDirs[] = {"acpi", "scsi"};

MountOp bind_op(std::string src, std::string dst, bool dir, std::uint64_t attr, std::string label) {
  MountOp m;
  m.kind = MountOp::Kind::kBind;
  m.src = std::move(src);
  m.dst = std::move(dst);
  m.src_is_dir = dir;
  m.attr = attr;
  m.label = std::move(label);
  return m;
}

MountOp simple_op(MountOp::Kind kind, std::string dst, std::string data = "",
                  std::string src = "") {
  MountOp m;
  m.kind = kind;
  m.dst = std::move(dst);
  m.data = std::move(data);
  m.src = std::move(src);
  m.label = "/" + m.dst;
  return m;
}

Result<std::string> read_small_file(const std::string& path) {
  common::UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return fail(errno, "open '{}'", path);
  std::string out;
  char buf[16384];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > static_cast<size_t>(kMaxCopiedFile)) return fail(EFBIG, "'{}'", path);
  }
  if (n < 0) return fail(errno, "read '{}'", path);
  return out;
}

// A symlink's target, or "" if path is not a symlink.
std::string link_target(const std::string& path) {
  char target[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string();
}

// One /etc entry: a link into /usr is recreated, a small file copied, anything else bound.
Result<void> add_etc_entry(const std::string& name, std::vector<MountOp>& out) {
  std::string host = "/etc/" + name;
  std::string dst = "etc/" + name;
  struct stat st;
  if (::lstat(host.c_str(), &st) != 0) return {};  // not on this host
  std::string src = host;
  if (S_ISLNK(st.st_mode)) {
    char real[PATH_MAX];
    if (::realpath(host.c_str(), real) == nullptr) return {};  // dangling: leave it out
    if (std::string(real).starts_with("/usr/")) {
      out.push_back(simple_op(MountOp::Kind::kSymlink, dst, "", real));
      out.back().fresh = true;
      return {};
    }
    src = real;
    if (::stat(real, &st) != 0) return {};
  }
  if (S_ISREG(st.st_mode) && st.st_size <= kMaxCopiedFile) {
    out.push_back(simple_op(MountOp::Kind::kFile, dst, TRY(read_small_file(src))));
    return {};
  }
  if (S_ISDIR(st.st_mode) && name == "ld.so.conf.d") {
    // A handful of one-line files: copy them too.
    out.push_back(simple_op(MountOp::Kind::kMkdir, dst));
    out.back().fresh = true;
    DIR* d = ::opendir(src.c_str());
    if (d == nullptr) return fail(errno, "open '{}'", src);
    while (dirent* e = ::readdir(d)) {
      std::string f = src + "/" + e->d_name;
      struct stat fst;
      if (e->d_name[0] == '.' || ::stat(f.c_str(), &fst) != 0 || !S_ISREG(fst.st_mode)) continue;
      auto text = read_small_file(f);
      if (!text) {
        ::closedir(d);
        return std::unexpected(text.error());
      }
      out.push_back(simple_op(MountOp::Kind::kFile, dst + "/" + e->d_name, std::move(*text)));
    }
    ::closedir(d);
    return {};
  }
  out.push_back(bind_op(src, dst, S_ISDIR(st.st_mode), kRoAttr, host));
  out.back().fresh = true;
  return {};
}

// Host system paths: trusted, since only root writes them.
Result<void> add_system_mounts(std::vector<MountOp>& out) {
  out.push_back(bind_op("/usr", "usr", true, kRoAttr, "/usr"));
  out.back().fresh = true;
  for (const char* d : kSystemDirs) {
    std::string host = std::string("/") + d;
    struct stat st;
    if (::lstat(host.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      out.push_back(simple_op(MountOp::Kind::kSymlink, d, "", link_target(host)));
    } else if (S_ISDIR(st.st_mode)) {
      out.push_back(bind_op(host, d, true, kRoAttr, host));
    } else {
      continue;
    }
    out.back().fresh = true;
  }
  return {};
}

Result<void> add_etc(const std::string& skeleton, const EtcFiles& generated,
                     std::vector<MountOp>& out) {
  if (!skeleton.empty() && generated.empty()) {
    out.push_back(bind_op(skeleton + "/etc", "etc", true, kRoAttr, "/etc"));
    out.back().fresh = true;
    return {};
  }
  out.push_back(simple_op(MountOp::Kind::kMkdir, "etc"));
  out.back().fresh = true;
  auto is_generated = [&](const std::string& name) {
    return std::any_of(generated.begin(), generated.end(),
                       [&](const auto& g) { return g.first == name; });
  };
  for (const char* e : skeleton_etc_entries())
    if (!is_generated(e)) TRY(add_etc_entry(e, out));
  for (const auto& [name, text] : generated)
    out.push_back(simple_op(MountOp::Kind::kFile, "etc/" + name, text));
  return {};
}

// The child skips entries this kernel does not have.
void add_proc(std::vector<MountOp>& out) {
  out.push_back(simple_op(MountOp::Kind::kProc, "proc"));
  out.back().fresh = true;
  for (const char* p : kProcReadOnly)
    out.push_back(simple_op(MountOp::Kind::kReadOnly, std::string("proc/") + p));
  for (const char* p : kProcMaskFiles)
    out.push_back(simple_op(MountOp::Kind::kMaskFile, std::string("proc/") + p));
  for (const char* p : kProcMaskDirs)
    out.push_back(simple_op(MountOp::Kind::kMaskDir, std::string("proc/") + p));
}

// A minimal /dev: the harmless character devices, no tty, no disks. Returns the index of the
// /dev/null bind, whose source also masks files in /proc.
int add_dev(const std::string& skeleton, std::vector<MountOp>& out) {
  if (!skeleton.empty()) {
    out.push_back(bind_op(skeleton + "/dev", "dev", true, kRoAttr, "/dev"));
    out.back().fresh = true;
  } else {
    out.push_back(simple_op(MountOp::Kind::kTmpfs, "dev", "mode=0755,size=64k,nr_inodes=64"));
    out.back().fresh = true;
    for (auto [name, target] : {std::pair{"fd", "/proc/self/fd"},
                                {"stdin", "/proc/self/fd/0"},
                                {"stdout", "/proc/self/fd/1"},
                                {"stderr", "/proc/self/fd/2"},
                                {"shm", "/tmp"}}) {
      out.push_back(simple_op(MountOp::Kind::kSymlink, std::string("dev/") + name, "", target));
      out.back().fresh = true;  // the tmpfs above is all of /dev: no symlink on the way
    }
  }
  int dev_null = -1;
  for (const char* d : skeleton_dev_nodes()) {
    std::string host = std::string("/dev/") + d;
    if (std::string(d) == "null") dev_null = static_cast<int>(out.size());
    // As they are: nodev would make them unusable, and nosuid or noexec mean nothing for a
    // character device (skipping them saves a syscall per node).
    out.push_back(bind_op(host, std::string("dev/") + d, false, 0, host));
    out.back().fresh = skeleton.empty();  // the skeleton has the mount points already
  }
  return dev_null;
}

Result<void> add_user_mounts(const policy::JailSpec& spec, std::vector<MountOp>& out) {
  for (const policy::Mount& m : spec.mounts) {
    std::string dst = m.dst.substr(1);
    if (m.kind == policy::Mount::Kind::kTmpfs) {
      out.push_back(
          simple_op(MountOp::Kind::kTmpfs, dst, "mode=0755,size=" + std::to_string(m.size)));
      continue;
    }
    const char* flag = m.read_only ? "--ro-bind" : "--bind";
    std::string src = TRY_CTX(resolve_trusted_path(m.src), "{} '{}'", flag, m.src);
    struct stat st;
    if (::stat(src.c_str(), &st) != 0) return fail(errno, "{} '{}'", flag, m.src);
    std::uint64_t attr =
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (m.read_only ? MOUNT_ATTR_RDONLY : 0);
    out.push_back(bind_op(src, dst, S_ISDIR(st.st_mode), attr, m.src + " -> " + m.dst));
  }
  return {};
}

// --device nodes: bound where they are on the host, without nodev on exactly that bind (the
// device controller, set up by the supervisor, decides what the jail may do with it).
Result<void> add_devices(const policy::JailSpec& spec, std::vector<MountOp>& out) {
  for (const policy::Device& d : spec.devices) {
    std::string src = TRY_CTX(resolve_trusted_path(d.path), "--device '{}'", d.path);
    struct stat st;
    if (::stat(src.c_str(), &st) != 0) return fail(errno, "--device '{}'", d.path);
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
      return fail(ENODEV, "--device '{}' is not a device node", d.path);
    out.push_back(bind_op(src, d.path.substr(1), false, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                          "--device " + d.path));
  }
  return {};
}

Result<std::unique_ptr<std::remove_pointer_t<cap_t>, CapDeleter>> make_capset(
    const std::vector<cap_value_t>& caps) {
  std::unique_ptr<std::remove_pointer_t<cap_t>, CapDeleter> c{cap_init()};
  if (!c) return fail(errno, "cap_init");
  if (!caps.empty()) {
    for (cap_flag_t f : {CAP_PERMITTED, CAP_EFFECTIVE, CAP_INHERITABLE})
      if (cap_set_flag(c.get(), f, static_cast<int>(caps.size()), caps.data(), CAP_SET) != 0)
        return fail(errno, "cap_set_flag");
  }
  return c;
}

}  // namespace

Result<std::string> resolve_trusted_path(const std::string& path) {
  if (path.empty() || path[0] != '/') return fail(EINVAL, "'{}' is not an absolute path", path);
  std::string resolved;  // no symlinks in it, no trailing '/'
  std::string rest = path;
  int hops = 0;
  const uid_t me = ::getuid();
  while (!rest.empty()) {
    size_t start = rest.find_first_not_of('/');
    if (start == std::string::npos) break;
    size_t end = rest.find('/', start);
    std::string comp =
        rest.substr(start, end == std::string::npos ? std::string::npos : end - start);
    rest = end == std::string::npos ? "" : rest.substr(end);
    if (comp == ".") continue;
    if (comp == "..") {
      resolved =
          resolved.substr(0, resolved.rfind('/') == std::string::npos ? 0 : resolved.rfind('/'));
      continue;
    }
    std::string next = resolved + "/" + comp;
    struct stat st;
    if (::lstat(next.c_str(), &st) != 0) {
      if (next == path) return fail(errno, "");  // the caller names the path already
      return fail(errno, "'{}'", next);
    }
    if (!S_ISLNK(st.st_mode)) {
      resolved = next;
      continue;
    }
    if (st.st_uid != 0 && st.st_uid != me)
      return fail(EPERM,
                  "'{}' is a symlink owned by uid {}; stockade follows only symlinks owned by root "
                  "or you, since a jail may have planted it: give the real path",
                  next, st.st_uid);
    if (++hops > 40) return fail(ELOOP, "'{}'", path);
    char target[PATH_MAX];
    ssize_t n = ::readlink(next.c_str(), target, sizeof target - 1);
    if (n < 0) return fail(errno, "readlink '{}'", next);
    std::string t(target, static_cast<size_t>(n));
    // /proc's magic links (ns/net, fd/N, exe) name kernel objects, not paths: a namespace or an
    // open file of the host handed into a jail is an escape hatch, so they are never bound.
    if (next.starts_with("/proc/") && t.find(":[") != std::string::npos)
      return fail(EPERM,
                  "'{}' is a kernel object ('{}'), not a file: it cannot be bound into a jail",
                  next, t);
    if (t.starts_with("/")) resolved.clear();
    rest = t + "/" + rest;
  }
  return resolved.empty() ? std::string("/") : resolved;
}

Result<std::unique_ptr<ChildPlan>> make_plan(const policy::JailSpec& spec, bool rootless,
                                             const EtcFiles& etc_files) {
  auto plan = std::make_unique<ChildPlan>();
  plan->rootless = rootless;
  plan->uid = spec.uid;
  plan->gid = spec.gid;
  // The root holds only mount points and is read-only once built.
  plan->stage_options = "mode=0755,size=1m,nr_inodes=4096";
  if (spec.chroot) {
    plan->chroot = true;
    plan->chroot_path = TRY_CTX(resolve_trusted_path(*spec.chroot), "--chroot '{}'", *spec.chroot);
    struct stat st;
    if (::stat(plan->chroot_path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return fail(ENOTDIR, "--chroot '{}'", *spec.chroot);
  } else {
    TRY(add_system_mounts(plan->mounts));
  }
  // The shared skeleton needs /run/stockade (root) and cannot take user mounts inside it.
  std::string skeleton;
  bool inside_skeleton = false;
  for (auto& m : spec.mounts)
    for (const char* d : {"/etc", "/dev"})
      inside_skeleton = inside_skeleton || m.dst == d || m.dst.starts_with(std::string(d) + "/");
  if (!rootless && !inside_skeleton && !spec.chroot)
    skeleton = TRY(ensure_skeleton(default_skeleton_base()));
  // A chroot keeps its own /etc: the generated files are not written into a prepared rootfs.
  if (!spec.chroot) TRY(add_etc(skeleton, etc_files, plan->mounts));
  add_proc(plan->mounts);
  // The skeleton's /dev is a read-only bind with no room for another node: a jail given
  // --device builds its /dev in place.
  plan->dev_null_index = add_dev(spec.devices.empty() ? skeleton : "", plan->mounts);
  plan->mounts.push_back(
      simple_op(MountOp::Kind::kTmpfs, "tmp", "mode=1777,size=" + std::to_string(spec.tmp_size)));
  plan->mounts.back().fresh = true;
  TRY(add_devices(spec, plan->mounts));
  if (plan->chroot)
    for (auto& m : plan->mounts) m.fresh = false;  // a rootfs may hold anything, symlinks too
  TRY(add_user_mounts(spec, plan->mounts));

  plan->hostname = spec.hostname;
  plan->loopback_up = spec.net != policy::NetMode::kNone;
  plan->rlimits = spec.rlimits;
  plan->cwd = spec.cwd;
  for (int c : spec.caps) plan->caps.push_back(static_cast<cap_value_t>(c));
  plan->last_cap = static_cast<int>(cap_max_bits()) - 1;
  plan->capset = TRY(make_capset(plan->caps));
  plan->seccomp = TRY(build_profile(spec.seccomp));
  // CAP_SYS_ADMIN lets a jail create every namespace but a user namespace, and clone3's flags
  // are out of the filter's sight: answer clone3 with ENOSYS for such jails.
  // The strict profile counts on it too: it allows clone3 for the guard to answer. So does an
  // imported profile that lets clone3 through (whatever it says about clone's flags).
  if (std::find(spec.caps.begin(), spec.caps.end(), CAP_SYS_ADMIN) != spec.caps.end() ||
      spec.seccomp.profile == "strict" || imported_allows_clone3(spec.seccomp))
    plan->clone3_guard = TRY(clone3_guard());

  plan->argv_store = spec.argv;
  plan->env_store = spec.env;
  for (auto& a : plan->argv_store) plan->argv.push_back(a.data());
  plan->argv.push_back(nullptr);
  for (auto& e : plan->env_store) {
    plan->envp.push_back(e.data());
    if (e.starts_with("PATH=")) {
      std::string p = e.substr(5);
      size_t i = 0;
      while (i <= p.size()) {
        size_t j = p.find(':', i);
        if (j == std::string::npos) j = p.size();
        plan->path_dirs.push_back(j > i ? p.substr(i, j - i) : ".");
        i = j + 1;
      }
    }
  }
  plan->envp.push_back(nullptr);
  return plan;
}

}  // namespace supervisor::detail
