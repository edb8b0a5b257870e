#include "cgroup/cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <string_view>
#include <thread>

#include "common/sys.hpp"

namespace cgroup {
namespace {

using common::fail;
using common::Result;
using common::UniqueFd;

// The jail's /dev always has these (supervisor/skeleton.cpp): null, zero, full, random, urandom.
constexpr std::pair<std::uint32_t, std::uint32_t> kBasicDevices[] = {
    {1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}};

// The CFS period: 100 ms, or 1 s when the quota would fall under the kernel's 1 ms minimum.
std::pair<std::uint64_t, std::uint64_t> cpu_quota_period(std::uint64_t ms_per_sec) {
  std::uint64_t period = 100000;
  std::uint64_t quota = ms_per_sec * 100;
  if (quota < 1000) {
    period = 1000000;
    quota = ms_per_sec * 1000;
  }
  return {quota, period};
}

Result<void> write_file(const std::string& path, const std::string& text) {
  UniqueFd fd{sys::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
  if (!fd) return fail(errno, "open '{}'", path);
  if (sys::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return fail(errno, "write '{}' to '{}'", text, path);
  return {};
}

std::optional<std::string> read_file(const std::string& path) {
  UniqueFd fd{sys::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return std::nullopt;
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = sys::read(fd.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  if (n < 0) return std::nullopt;
  return out;
}

std::optional<std::uint64_t> read_number(const std::string& path) {
  auto text = read_file(path);
  if (!text || text->empty() || (*text)[0] < '0' || (*text)[0] > '9') return std::nullopt;
  return std::strtoull(text->c_str(), nullptr, 10);
}

// Calls f with each line of text (a view, without its newline).
template <class F>
void for_each_line(std::string_view text, F f) {
  while (!text.empty()) {
    size_t eol = text.find('\n');
    f(text.substr(0, eol));
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
  }
}

// The words of text, split at sep, spaces and newlines; views into text.
std::vector<std::string_view> words(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != sep && text[i] != ' ' && text[i] != '\n') continue;
    if (i > start) out.push_back(text.substr(start, i - start));
    start = i + 1;
  }
  return out;
}

// "key value" lines (memory.events, memory.oom_control, cpu.stat).
std::optional<std::uint64_t> read_key(const std::string& path, const std::string& key) {
  auto text = read_file(path);
  if (!text) return std::nullopt;
  auto w = words(*text, ' ');
  for (size_t i = 0; i + 1 < w.size(); i += 2) {
    if (w[i] != key) continue;
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(w[i + 1].data(), w[i + 1].data() + w[i + 1].size(), v);
    if (ec != std::errc{} || end != w[i + 1].data() + w[i + 1].size()) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string join_path(const std::string& mount, const std::string& parent) {
  std::string p = mount;
  if (!parent.empty()) p += "/" + parent;
  return p + "/stockade";
}

std::vector<std::string> split_words(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (auto w : words(s, sep)) out.emplace_back(w);
  return out;
}

// The controllers a v2 directory offers its children (its cgroup.controllers; none if unreadable).
std::vector<std::string> controllers_offered(const std::string& dir) {
  return split_words(read_file(dir + "/cgroup.controllers").value_or(""), ' ');
}

// Which directory of the plan serves a controller (v1: the one on its mount; v2: the only one).
std::string dir_for(const Plan& plan, const std::string& controller) {
  if (plan.version == Version::kV2) return plan.dirs.empty() ? "" : plan.dirs[0];
  for (size_t i = 0; i < plan.controllers.size() && i < plan.dirs.size(); ++i)
    if (plan.controllers[i] == controller) return plan.dirs[i];
  return "";
}

// Mkdir that accepts an existing directory.
Result<void> ensure_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return {};
  return fail(errno, "create '{}'", path);
}

// The v2 device filter: a BPF_PROG_TYPE_CGROUP_DEVICE program that returns 1 (allow) for /dev's
// basics and the --device nodes with their access letters, 0 (EPERM) for every other device.
// Hand-assembled: a few compares per rule, no maps, no helpers. The context is
// struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }.
std::vector<bpf_insn> device_program(const std::vector<DeviceRule>& devices) {
  auto insn = [](std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off,
                 std::int32_t imm) {
    bpf_insn i{};
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    return i;
  };
  constexpr std::uint8_t kLdxW = BPF_LDX | BPF_MEM | BPF_W, kMovX = BPF_ALU64 | BPF_MOV | BPF_X,
                         kMovK = BPF_ALU64 | BPF_MOV | BPF_K, kAndK = BPF_ALU64 | BPF_AND | BPF_K,
                         kRshK = BPF_ALU64 | BPF_RSH | BPF_K, kJneK = BPF_JMP | BPF_JNE | BPF_K,
                         kExit = BPF_JMP | BPF_EXIT;
  std::vector<DeviceRule> rules;
  for (auto [maj, min] : kBasicDevices) rules.push_back({'c', maj, min, "rw", ""});
  rules.insert(rules.end(), devices.begin(), devices.end());
  std::vector<bpf_insn> p = {
      insn(kLdxW, 2, 1, 0, 0),       // r2 = access_type
      insn(kMovX, 3, 2, 0, 0),       // r3 = r2
      insn(kAndK, 3, 0, 0, 0xffff),  // r3 = type
      insn(kRshK, 2, 0, 0, 16),      // r2 = access
      insn(kLdxW, 4, 1, 4, 0),       // r4 = major
      insn(kLdxW, 5, 1, 8, 0),       // r5 = minor
  };
  for (auto& r : rules) {
    std::int32_t type = r.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
    std::int32_t acc = 0;
    for (char c : r.access)
      acc |= c == 'r' ? BPF_DEVCG_ACC_READ : c == 'w' ? BPF_DEVCG_ACC_WRITE : BPF_DEVCG_ACC_MKNOD;
    // Eight instructions per rule; each "not this rule" jumps to the next rule's first.
    p.push_back(insn(kJneK, 3, 0, 7, type));
    p.push_back(insn(kJneK, 4, 0, 6, static_cast<std::int32_t>(r.major)));
    p.push_back(insn(kJneK, 5, 0, 5, static_cast<std::int32_t>(r.minor)));
    p.push_back(insn(kMovX, 0, 2, 0, 0));     // r0 = access asked for
    p.push_back(insn(kAndK, 0, 0, 0, ~acc));  // ... beyond what the rule allows
    p.push_back(insn(kJneK, 0, 0, 2, 0));     // any: not allowed by this rule
    p.push_back(insn(kMovK, 0, 0, 0, 1));
    p.push_back(insn(kExit, 0, 0, 0, 0));
  }
  p.push_back(insn(kMovK, 0, 0, 0, 0));
  p.push_back(insn(kExit, 0, 0, 0, 0));
  return p;
}

Result<void> attach_device_program(int cgroup_fd, const std::vector<DeviceRule>& devices) {
  auto prog = device_program(devices);
  union bpf_attr load {};
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insns = reinterpret_cast<std::uint64_t>(prog.data());
  load.insn_cnt = static_cast<std::uint32_t>(prog.size());
  load.license = reinterpret_cast<std::uint64_t>("Apache-2.0");  // no GPL-only helpers used
  UniqueFd fd{static_cast<int>(::syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load))};
  if (!fd)
    return fail(errno,
                "load the cgroup v2 device program (the kernel needs "
                "CONFIG_CGROUP_BPF; without it --device cannot be enforced on v2)");
  union bpf_attr attach {};
  attach.target_fd = static_cast<std::uint32_t>(cgroup_fd);
  attach.attach_bpf_fd = static_cast<std::uint32_t>(fd.get());
  attach.attach_type = BPF_CGROUP_DEVICE;
  // The cgroup holds the program from here on, and drops it with the directory.
  if (::syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach) != 0)
    return fail(errno, "attach the cgroup v2 device program");
  return {};
}

}  // namespace

std::string version_name(Version v) {
  switch (v) {
    case Version::kV1:
      return "v1";
    case Version::kV2:
      return "v2";
    case Version::kNone:
      break;
  }
  return "none";
}

bool is_jail_name(const std::string& name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-';
  });
}

Layout parse_layout(std::string_view mountinfo, std::string_view v2_controllers) {
  Layout l;
  // Views into the text, line by line: on v1 and hybrid hosts /proc/self/mountinfo is read on
  // every launch, and only the cgroup lines need anything kept.
  for_each_line(mountinfo, [&l](std::string_view line) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    auto sep = line.find(" - ");
    if (sep == std::string_view::npos) return;
    auto right = words(line.substr(sep + 3), ' ');  // FSTYPE SOURCE SUPEROPTIONS
    if (right.size() < 3 || (right[0] != "cgroup2" && right[0] != "cgroup")) return;
    auto left = words(line.substr(0, sep), ' ');
    if (left.size() < 5) return;
    const std::string_view mount_point = left[4];
    if (right[0] == "cgroup2") {
      if (l.v2.empty()) l.v2 = mount_point;
      return;
    }
    for (auto opt : words(right[2], ','))
      if (opt != "rw" && opt != "ro" && !opt.starts_with("name=") && !l.v1.contains(opt))
        l.v1.emplace(opt, mount_point);
  });
  l.v2_controllers = split_words(v2_controllers, ' ');
  return l;
}

std::optional<Layout> pure_v2_layout(const std::string& root, const std::string& self_cgroup) {
  struct statfs fs {};
  if (::statfs(root.c_str(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC) return std::nullopt;
  // Only "0::PATH" lines: a v1 hierarchy shows as "ID:CONTROLLERS:PATH" or "ID:name=NAME:PATH".
  auto text = read_file(self_cgroup);
  if (!text || text->empty()) return std::nullopt;
  bool v1 = false;
  for_each_line(*text, [&v1](std::string_view line) { v1 |= !line.starts_with("0::"); });
  if (v1) return std::nullopt;
  Layout l;
  l.v2 = root;
  l.v2_controllers = controllers_offered(root);
  return l;
}

const Layout& host_layout() {
  static const Layout kLayout = [] {
    // On a v1 or hybrid host /sys/fs/cgroup is a tmpfs: one statfs is all this costs there.
    if (auto l = pure_v2_layout("/sys/fs/cgroup", "/proc/self/cgroup")) return std::move(*l);
    std::string mi = read_file("/proc/self/mountinfo").value_or("");
    Layout l = parse_layout(mi, "");
    if (!l.v2.empty()) l.v2_controllers = controllers_offered(l.v2);
    return l;
  }();
  return kLayout;
}

std::vector<std::string> needed_controllers(const Limits& limits) {
  std::vector<std::string> out;
  if (limits.pids) out.push_back("pids");
  if (limits.memory_bytes) out.push_back("memory");
  if (limits.cpu_ms_per_sec) out.push_back("cpu");
  if (!limits.devices.empty()) out.push_back("devices");
  return out;
}

Result<Plan> plan_jail(const Layout& layout, const Limits& limits, const std::string& parent,
                       const std::string& id) {
  Plan plan;
  plan.controllers = needed_controllers(limits);
  if (plan.controllers.empty()) return plan;
  bool any_v1 = std::any_of(plan.controllers.begin(), plan.controllers.end(),
                            [&](const std::string& c) { return layout.v1.contains(c); });
  if (any_v1) {
    // A hybrid host: limits live on the v1 hierarchies; each must be there.
    plan.version = Version::kV1;
    for (auto& c : plan.controllers) {
      auto it = layout.v1.find(c);
      if (it == layout.v1.end())
        return fail(0,
                    "the {} limit cannot be enforced: this host's cgroup v1 has no '{}' "
                    "controller mounted (and a controller cannot be split between v1 and v2)",
                    c, c);
      std::string base = join_path(it->second, parent);
      plan.parents.push_back(base);
      plan.dirs.push_back(base + "/" + id);
    }
    // CPU time used, for ps/inspect: v1 counts it in cpuacct, which may be mounted on its own.
    auto cpu = layout.v1.find("cpu"), acct = layout.v1.find("cpuacct");
    if (limits.cpu_ms_per_sec && cpu != layout.v1.end() && acct != layout.v1.end() &&
        acct->second != cpu->second) {
      std::string base = join_path(acct->second, parent);
      plan.controllers.push_back("cpuacct");
      plan.parents.push_back(base);
      plan.dirs.push_back(base + "/" + id);
    }
    return plan;
  }
  if (layout.v2.empty())
    return fail(0,
                "the {} limit cannot be enforced: no cgroup filesystem is mounted on this host "
                "(neither v1 nor v2 in /proc/self/mountinfo)",
                plan.controllers.front());
  plan.version = Version::kV2;
  for (auto& c : plan.controllers) {
    if (c == "devices") continue;  // v2 has no devices controller: a BPF program (create)
    // The jail's parent must be given the controller by its own parent (delegation).
    std::string where = parent.empty() ? layout.v2 : layout.v2 + "/" + parent;
    auto offered = controllers_offered(where);
    if (parent.empty()) offered = layout.v2_controllers;
    if (std::find(offered.begin(), offered.end(), c) == offered.end())
      return fail(0,
                  "the {} limit cannot be enforced: cgroup v2 at '{}' does not offer the '{}' "
                  "controller (enable it in that cgroup's parent's cgroup.subtree_control, or "
                  "give --cgroup-parent a delegated cgroup that has it)",
                  c, where, c);
  }
  std::string base = join_path(layout.v2, parent);
  plan.parents.push_back(base);
  plan.dirs.push_back(base + "/" + id);
  return plan;
}

std::vector<Write> limit_writes(const Plan& plan, const Limits& limits) {
  std::vector<Write> out;
  const bool v2 = plan.version == Version::kV2;
  if (limits.pids) {
    std::string d = dir_for(plan, "pids");
    out.push_back({d + "/pids.max", std::to_string(*limits.pids)});
  }
  if (limits.memory_bytes) {
    std::string d = dir_for(plan, "memory");
    std::string bytes = std::to_string(*limits.memory_bytes);
    if (v2) {
      out.push_back({d + "/memory.max", bytes});
      out.push_back({d + "/memory.swap.max", "0"});  // skipped if the kernel has no swap control
    } else {
      // memsw (memory + swap) must stay >= the memory limit: memory first. Equal means no swap.
      out.push_back({d + "/memory.limit_in_bytes", bytes});
      out.push_back({d + "/memory.memsw.limit_in_bytes", bytes});
    }
  }
  if (limits.cpu_ms_per_sec) {
    std::string d = dir_for(plan, "cpu");
    auto [quota, period] = cpu_quota_period(*limits.cpu_ms_per_sec);
    if (v2) {
      out.push_back({d + "/cpu.max", fmt::format("{} {}", quota, period)});
    } else {
      out.push_back({d + "/cpu.cfs_period_us", std::to_string(period)});
      out.push_back({d + "/cpu.cfs_quota_us", std::to_string(quota)});
    }
  }
  if (!limits.devices.empty() && !v2) {
    std::string d = dir_for(plan, "devices");
    out.push_back({d + "/devices.deny", "a"});
    for (auto [maj, min] : kBasicDevices)
      out.push_back({d + "/devices.allow", fmt::format("c {}:{} rw", maj, min)});
    for (auto& dev : limits.devices)
      out.push_back({d + "/devices.allow",
                     fmt::format("{} {}:{} {}", dev.type, dev.major, dev.minor, dev.access)});
  }
  return out;
}

JailCgroup::~JailCgroup() {
  // Nothing to report to from a destructor; stockade gc removes what is left after a failure.
  if (active()) (void)remove();
}

Result<void> JailCgroup::attach(pid_t pid) const {
  if (plan_.version != Version::kV1) return {};
  std::string text = std::to_string(pid);
  for (auto& d : plan_.dirs) TRY_CTX(write_file(d + "/cgroup.procs", text), "cgroup");
  return {};
}

Result<std::vector<UniqueFd>> JailCgroup::join_fds() const {
  std::vector<UniqueFd> fds;
  if (plan_.version != Version::kV1) return fds;
  for (auto& d : plan_.dirs) {
    std::string path = d + "/tasks";
    UniqueFd fd{sys::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
    if (!fd) return fail(errno, "cgroup: open '{}'", path);
    fds.push_back(std::move(fd));
  }
  return fds;
}

std::uint64_t JailCgroup::oom_kills() const {
  std::string d = dir_for(plan_, "memory");
  if (d.empty()) return 0;
  if (plan_.version == Version::kV2) return read_key(d + "/memory.events", "oom_kill").value_or(0);
  return read_key(d + "/memory.oom_control", "oom_kill").value_or(0);
}

Result<void> JailCgroup::remove(void (*step)(const char*)) {
  dir_fd_.reset();
  std::optional<common::Error> first;
  for (size_t i = 0; i < plan_.dirs.size(); ++i) {
    if (auto ok = remove_dir(plan_.dirs[i]); !ok && !first) first = ok.error();
    if (i == 0 && step != nullptr) step("during-cgroup-remove");
  }
  plan_.dirs.clear();
  remove_empty_parent_dirs(plan_.parents);
  if (first) return std::unexpected(*first);
  return {};
}

void remove_empty_parent_dirs(const std::vector<std::string>& parents) {
  // rmdir takes only an empty cgroup: a parent another jail still uses stays (EBUSY, ENOTEMPTY).
  for (auto& p : parents)
    if (p.ends_with("/stockade")) (void)::rmdir(p.c_str());
}

namespace {

// The shared parents (<mount>/<parent>/stockade) exist and, on v2, hand the controllers on.
Result<void> ensure_parents(const Plan& plan) {
  for (auto& p : plan.parents) {
    if (exists(p)) continue;
    TRY_CTX(ensure_dir(p), "cgroup");
  }
  if (plan.version == Version::kV2) {
    // Hand the controllers on to the jails' directories (ours: nothing else lives here), also
    // to a parent made for fewer controllers by an earlier run.
    auto enabled =
        split_words(read_file(plan.parents[0] + "/cgroup.subtree_control").value_or(""), ' ');
    std::string text;
    for (auto& c : plan.controllers)
      if (c != "devices" && std::find(enabled.begin(), enabled.end(), c) == enabled.end())
        text += (text.empty() ? "+" : " +") + c;
    if (!text.empty())
      TRY_CTX(write_file(plan.parents[0] + "/cgroup.subtree_control", text), "cgroup");
  }
  return {};
}

}  // namespace

Result<JailCgroup> create(const Plan& plan, const Limits& limits, void (*step)(const char*)) {
  if (plan.version == Version::kNone) return JailCgroup{};
  TRY(ensure_parents(plan));
  // The guard owns each directory as soon as it exists: an error below removes them.
  JailCgroup cg{Plan{plan.version, {}, plan.parents, plan.controllers}};
  for (auto& d : plan.dirs) {
    // The last jail of a parent removes it when it ends (remove_empty_parents): one doing so
    // just now makes ours fail with ENOENT, and the parent is made again.
    int tries = 0;
    while (::mkdir(d.c_str(), 0755) != 0) {
      if (errno != ENOENT || ++tries > 3) return fail(errno, "cgroup: create '{}'", d);
      TRY(ensure_parents(plan));
    }
    cg.plan_.dirs.push_back(d);
    if (cg.plan_.dirs.size() == 1 && step != nullptr) step("after-cgroup-dir");
  }
  for (auto& w : limit_writes(plan, limits)) {
    auto ok = write_file(w.path, w.text);
    if (!ok && ok.error().err == ENOENT && w.path.ends_with("/memory.swap.max"))
      continue;  // no swap control
    if (!ok && w.path.ends_with("/memory.memsw.limit_in_bytes") && ok.error().err == ENOENT)
      continue;  // swap accounting off: there is no swap to limit
    if (!ok) return std::unexpected(common::context(ok.error(), "cgroup"));
  }
  if (plan.version == Version::kV2) {
    // Not O_PATH: clone3 and bpf() take the directory through fdget(), which refuses those.
    UniqueFd fd{sys::open(plan.dirs[0].c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (!fd) return fail(errno, "cgroup: open '{}'", plan.dirs[0]);
    if (!limits.devices.empty())
      TRY_CTX(attach_device_program(fd.get(), limits.devices), "--device");
    cg.set_clone_fd(std::move(fd));
  }
  return cg;
}

Usage read_usage(const std::vector<std::string>& dirs) {
  Usage u;
  for (auto& d : dirs) {
    if (exists(d + "/memory.current")) {  // v2: every controller in one directory
      u.memory_current = read_number(d + "/memory.current");
      u.memory_peak = read_number(d + "/memory.peak");
      u.memory_max = read_number(d + "/memory.max");
      u.oom_kills = read_key(d + "/memory.events", "oom_kill");
    }
    if (exists(d + "/memory.usage_in_bytes")) {
      u.memory_current = read_number(d + "/memory.usage_in_bytes");
      u.memory_peak = read_number(d + "/memory.max_usage_in_bytes");
      u.memory_max = read_number(d + "/memory.limit_in_bytes");
      u.oom_kills = read_key(d + "/memory.oom_control", "oom_kill");
    }
    if (exists(d + "/pids.current")) {
      u.pids_current = read_number(d + "/pids.current");
      u.pids_max = read_number(d + "/pids.max");
    }
    if (auto us = read_key(d + "/cpu.stat", "usage_usec")) u.cpu_usage_us = us;
    if (auto ns = read_number(d + "/cpuacct.usage")) u.cpu_usage_us = *ns / 1000;
  }
  return u;
}

Result<void> remove_dir(const std::string& dir) {
  using Clock = std::chrono::steady_clock;
  auto give_up = Clock::now() + std::chrono::seconds(2);
  for (int round = 0;; ++round) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return {};
    if (errno != EBUSY || Clock::now() > give_up) return fail(errno, "remove cgroup '{}'", dir);
    // Still populated: pid 1's death is killing the jail, or a crashed supervisor left it. The
    // processes in a jail's own cgroup are the jail's: kill them.
    if (round > 0) {
      if (exists(dir + "/cgroup.kill")) {
        (void)write_file(dir + "/cgroup.kill", "1");  // v2; failing, the loop says so in time
      } else {
        for (auto& p : split_words(read_file(dir + "/cgroup.procs").value_or(""), '\n')) {
          pid_t pid = static_cast<pid_t>(std::strtol(p.c_str(), nullptr, 10));
          if (pid > 1) (void)::kill(pid, SIGKILL);  // gone already is fine
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(round < 10 ? 1 : 20));
  }
}

std::vector<std::pair<std::string, std::string>> list_jail_dirs(const Layout& layout,
                                                                const std::string& parent) {
  std::vector<std::string> bases;
  for (auto& [c, mount] : layout.v1) {
    std::string b = join_path(mount, parent);
    if (std::find(bases.begin(), bases.end(), b) == bases.end()) bases.push_back(b);
  }
  if (!layout.v2.empty()) bases.push_back(join_path(layout.v2, parent));
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& b : bases) {
    DIR* d = ::opendir(b.c_str());
    if (d == nullptr) continue;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (e->d_type == DT_DIR && n != "." && n != ".." && is_jail_name(n))
        out.emplace_back(b + "/" + n, n);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace cgroup
