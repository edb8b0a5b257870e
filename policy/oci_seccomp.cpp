// import_oci_seccomp: a Docker/OCI runtime-spec seccomp profile (JSON) -> a SeccompPolicy.
//
// The profile becomes its own base ("oci:PATH"): its default action and its rules, none of
// stockade's built-in ones. Where a profile means something only under runc (capability, arch and
// kernel gates, repeated argument tests), we read it the way runc and moby do, so a profile that
// works under Docker means the same here. Every value is checked, and errors name the file and
// the JSON path of the value. nlohmann::json throws; nothing thrown leaves here.
#include <seccomp.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "policy/detail/parse.hpp"
#include "policy/spec.hpp"

namespace policy {
namespace {

using common::Error;
using common::Result;
using json = nlohmann::json;

// This machine's names in the three vocabularies profiles use: uname, libseccomp, Go's GOARCH
// (moby writes includes.arches in GOARCH terms).
struct NativeArch {
  const char* uname;
  const char* scmp;
  const char* goarch;
};
#if defined(__x86_64__)
constexpr NativeArch kNative = {"x86_64", "SCMP_ARCH_X86_64", "amd64"};
#elif defined(__aarch64__)
constexpr NativeArch kNative = {"aarch64", "SCMP_ARCH_AARCH64", "arm64"};
#else
#error "add this architecture's names to kNative"
#endif

constexpr int kMaxErrno = 4095;  // the kernel reads SECCOMP_RET_ERRNO's data as -errno up to this

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// "4.8" -> {4, 8}, as moby's minKernel is written.
std::optional<std::pair<int, int>> parse_kernel_version(std::string_view s) {
  auto dot = s.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto major = detail::parse_number<int>(s.substr(0, dot));
  auto minor = detail::parse_number<int>(s.substr(dot + 1));
  if (!major || !minor) return std::nullopt;
  return std::pair{*major, *minor};
}

std::pair<int, int> running_kernel() {
  utsname u{};
  int major = 0, minor = 0;
  if (::uname(&u) == 0) std::sscanf(u.release, "%d.%d", &major, &minor);
  return {major, minor};
}

// An entry's includes or excludes, parsed.
struct Filter {
  std::vector<std::string> caps;
  std::vector<std::string> arches;
  std::optional<std::pair<int, int>> min_kernel;
};

class Importer {
 public:
  Importer(const std::string& path, const std::vector<int>& caps,
           std::vector<std::string>* warnings)
      : path_(path), caps_(caps), warnings_(warnings), kernel_(running_kernel()) {}

  Result<SeccompPolicy> import(const json& root) {
    if (!root.is_object()) return err("", "the profile must be a JSON object, not {}", kind(root));
    TRY(check_keys(root, "",
                   {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls",
                    "flags", "listenerPath", "listenerMetadata"}));
    SeccompPolicy p;
    p.profile = "oci:" + path_;
    if (!root.contains("defaultAction"))
      return err("", "needs 'defaultAction', e.g. \"SCMP_ACT_ERRNO\"");
    p.default_action = TRY(action(root["defaultAction"], "defaultAction"));
    p.default_errno = TRY(errno_ret(root, "defaultErrnoRet", "", p.default_action));
    TRY(check_architectures(root));
    TRY(check_flags(root));
    if (root.contains("syscalls")) {
      const json& calls = root["syscalls"];
      if (!calls.is_array()) return err("syscalls", "must be an array, not {}", kind(calls));
      for (std::size_t i = 0; i < calls.size(); ++i)
        TRY(entry(calls[i], fmt::format("syscalls[{}]", i), p.base_rules));
    }
    return p;
  }

 private:
  std::string path_;
  const std::vector<int>& caps_;
  std::vector<std::string>* warnings_;
  std::pair<int, int> kernel_;
  std::set<std::string> warned_;

  template <class... Args>
  std::unexpected<Error> err(const std::string& where, fmt::format_string<Args...> f,
                             Args&&... args) {
    std::string what = fmt::format(f, std::forward<Args>(args)...);
    if (where.empty()) return std::unexpected(Error{0, fmt::format("{}: {}", path_, what)});
    return std::unexpected(Error{0, fmt::format("{}: {}: {}", path_, where, what)});
  }

  static std::string at(const std::string& where, std::string_view key) {
    return where.empty() ? std::string(key) : fmt::format("{}.{}", where, key);
  }

  static const char* kind(const json& v) {
    switch (v.type()) {
      case json::value_t::object:
        return "an object";
      case json::value_t::array:
        return "an array";
      case json::value_t::string:
        return "a string";
      case json::value_t::boolean:
        return "a boolean";
      case json::value_t::null:
        return "null";
      case json::value_t::number_float:
        return "a fraction";
      default:
        return v.is_number_integer() && v.get<std::int64_t>() < 0 ? "a negative number"
                                                                  : "a number";
    }
  }

  Result<void> check_keys(const json& obj, const std::string& where,
                          const std::vector<std::string>& allowed) {
    for (auto it = obj.begin(); it != obj.end(); ++it)
      if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
        return err(where, "unknown key '{}'; use one of {}", it.key(), join(allowed));
    return {};
  }

  Result<std::string> string(const json& v, const std::string& where) {
    if (!v.is_string()) return err(where, "must be a string, not {}", kind(v));
    return v.get<std::string>();
  }

  Result<std::vector<std::string>> strings(const json& v, const std::string& where) {
    if (!v.is_array()) return err(where, "must be an array of strings, not {}", kind(v));
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.size(); ++i)
      out.push_back(TRY(string(v[i], fmt::format("{}[{}]", where, i))));
    return out;
  }

  Result<std::uint64_t> unsigned_number(const json& v, const std::string& where,
                                        std::uint64_t max) {
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() > max)
      return err(where, "must be a whole number from 0 to {}, not {}", max,
                 v.is_number() ? v.dump() : kind(v));
    return v.get<std::uint64_t>();
  }

  Result<SeccompAction> action(const json& v, const std::string& where) {
    std::string a = TRY(string(v, where));
    // KILL_THREAD becomes a whole-process kill: the survivors of a thread killed mid-syscall
    // would run on in an unknown state, and stopping the workload is the safe side.
    static const std::map<std::string, SeccompAction> kActions = {
        {"SCMP_ACT_ALLOW", SeccompAction::kAllow},
        {"SCMP_ACT_ERRNO", SeccompAction::kErrno},
        {"SCMP_ACT_KILL", SeccompAction::kKill},
        {"SCMP_ACT_KILL_THREAD", SeccompAction::kKill},
        {"SCMP_ACT_KILL_PROCESS", SeccompAction::kKill},
        {"SCMP_ACT_LOG", SeccompAction::kLog}};
    if (auto it = kActions.find(a); it != kActions.end()) return it->second;
    if (a == "SCMP_ACT_TRACE")
      return err(where,
                 "SCMP_ACT_TRACE needs a ptrace tracer and stockade runs none; use SCMP_ACT_ERRNO");
    if (a == "SCMP_ACT_TRAP")
      return err(where,
                 "SCMP_ACT_TRAP (SIGSYS) is not supported; use SCMP_ACT_ERRNO or "
                 "SCMP_ACT_KILL_PROCESS");
    if (a == "SCMP_ACT_NOTIFY")
      return err(where,
                 "SCMP_ACT_NOTIFY needs a notification listener and stockade runs none; use "
                 "SCMP_ACT_ERRNO");
    return err(where,
               "unknown action '{}'; use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL_PROCESS, "
               "SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL or SCMP_ACT_LOG",
               a);
  }

  // obj[key], an errno for an ERRNO action (EPERM when absent, as runc does).
  Result<int> errno_ret(const json& obj, const char* key, const std::string& where,
                        SeccompAction a) {
    if (!obj.contains(key)) return EPERM;
    if (a != SeccompAction::kErrno)
      return err(at(where, key), "is only used with SCMP_ACT_ERRNO; remove it");
    return static_cast<int>(TRY(unsigned_number(obj[key], at(where, key), kMaxErrno)));
  }

  // Stockade filters only the native ABI (syscalls through any other one kill the process), so
  // other architectures are ignored; but a profile must cover this one.
  Result<void> check_architectures(const json& root) {
    bool listed = false, native = false;
    if (root.contains("architectures")) {
      for (const auto& a : TRY(strings(root["architectures"], "architectures"))) {
        listed = true;
        native = native || a == kNative.scmp;
      }
    }
    if (root.contains("archMap")) {
      const json& m = root["archMap"];
      if (!m.is_array()) return err("archMap", "must be an array, not {}", kind(m));
      for (std::size_t i = 0; i < m.size(); ++i) {
        std::string where = fmt::format("archMap[{}]", i);
        if (!m[i].is_object()) return err(where, "must be an object, not {}", kind(m[i]));
        TRY(check_keys(m[i], where, {"architecture", "subArchitectures"}));
        if (!m[i].contains("architecture")) return err(where, "needs 'architecture'");
        std::string a = TRY(string(m[i]["architecture"], at(where, "architecture")));
        if (m[i].contains("subArchitectures"))
          (void)TRY(strings(m[i]["subArchitectures"], at(where, "subArchitectures")));
        listed = true;
        native = native || a == kNative.scmp;
      }
    }
    if (listed && !native)
      return err("", "the profile does not cover {} (no {} in 'architectures' or 'archMap')",
                 kNative.uname, kNative.scmp);
    return {};
  }

  Result<void> check_flags(const json& root) {
    if (root.contains("listenerPath")) {
      std::string l = TRY(string(root["listenerPath"], "listenerPath"));
      if (!l.empty())
        return err("listenerPath", "seccomp notification listeners are not supported; remove it");
    }
    if (!root.contains("flags")) return {};
    for (const auto& f : TRY(strings(root["flags"], "flags"))) {
      // Stockade loads every program with SECCOMP_FILTER_FLAG_LOG, and before the workload has a
      // second thread (TSYNC changes nothing); it keeps the speculation mitigation on.
      if (f == "SECCOMP_FILTER_FLAG_LOG" || f == "SECCOMP_FILTER_FLAG_TSYNC") continue;
      if (f == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") {
        warn(fmt::format("{}: flags: SECCOMP_FILTER_FLAG_SPEC_ALLOW, ignoring", path_));
        continue;
      }
      return err("flags", "unknown flag '{}'; use SECCOMP_FILTER_FLAG_LOG, _TSYNC or _SPEC_ALLOW",
                 f);
    }
    return {};
  }

  void warn(std::string line) {
    if (warnings_ != nullptr && warned_.insert(line).second) warnings_->push_back(std::move(line));
  }

  Result<Filter> filter(const json& v, const std::string& where) {
    if (!v.is_object()) return err(where, "must be an object, not {}", kind(v));
    TRY(check_keys(v, where, {"caps", "arches", "minKernel"}));
    Filter f;
    if (v.contains("caps")) f.caps = TRY(strings(v["caps"], at(where, "caps")));
    if (v.contains("arches")) f.arches = TRY(strings(v["arches"], at(where, "arches")));
    if (v.contains("minKernel")) {
      std::string k = TRY(string(v["minKernel"], at(where, "minKernel")));
      f.min_kernel = parse_kernel_version(k);
      if (!f.min_kernel)
        return err(at(where, "minKernel"), "'{}' is not a kernel version such as \"4.8\"", k);
    }
    return f;
  }

  bool holds(const std::string& cap) const {
    // A name this libcap does not know is a capability no jail can be granted.
    auto v = detail::cap_from_user_name(cap);
    return v && std::find(caps_.begin(), caps_.end(), *v) != caps_.end();
  }

  static bool native_arch(const std::string& a) {
    return a == kNative.goarch || a == kNative.uname || a == kNative.scmp;
  }

  // moby's rules: every included cap held, this arch among included arches, the kernel at least
  // minKernel; and no excluded cap held, this arch not excluded, the kernel below minKernel.
  bool applies(const std::optional<Filter>& inc, const std::optional<Filter>& exc) const {
    if (inc) {
      if (!inc->arches.empty() && std::none_of(inc->arches.begin(), inc->arches.end(), native_arch))
        return false;
      for (const auto& c : inc->caps)
        if (!holds(c)) return false;
      if (inc->min_kernel && kernel_ < *inc->min_kernel) return false;
    }
    if (exc) {
      if (std::any_of(exc->arches.begin(), exc->arches.end(), native_arch)) return false;
      for (const auto& c : exc->caps)
        if (holds(c)) return false;
      if (exc->min_kernel && kernel_ >= *exc->min_kernel) return false;
    }
    return true;
  }

  Result<SyscallArg> arg(const json& v, const std::string& where) {
    if (!v.is_object()) return err(where, "must be an object, not {}", kind(v));
    TRY(check_keys(v, where, {"index", "value", "valueTwo", "op"}));
    for (const char* key : {"index", "value", "op"})
      if (!v.contains(key)) return err(where, "needs '{}'", key);
    SyscallArg a;
    a.index = static_cast<unsigned>(TRY(unsigned_number(v["index"], at(where, "index"), 5)));
    std::uint64_t value = TRY(unsigned_number(v["value"], at(where, "value"), UINT64_MAX));
    std::uint64_t two = 0;
    if (v.contains("valueTwo"))
      two = TRY(unsigned_number(v["valueTwo"], at(where, "valueTwo"), UINT64_MAX));
    std::string op = TRY(string(v["op"], at(where, "op")));
    static const std::map<std::string, SyscallArg::Op> kOps = {
        {"SCMP_CMP_EQ", SyscallArg::Op::kEq},
        {"SCMP_CMP_NE", SyscallArg::Op::kNe},
        {"SCMP_CMP_LT", SyscallArg::Op::kLt},
        {"SCMP_CMP_LE", SyscallArg::Op::kLe},
        {"SCMP_CMP_GT", SyscallArg::Op::kGt},
        {"SCMP_CMP_GE", SyscallArg::Op::kGe},
        {"SCMP_CMP_MASKED_EQ", SyscallArg::Op::kMaskedEq}};
    auto it = kOps.find(op);
    if (it == kOps.end())
      return err(at(where, "op"),
                 "unknown operator '{}'; use SCMP_CMP_EQ, _NE, _LT, _LE, _GT, _GE or _MASKED_EQ",
                 op);
    a.op = it->second;
    if (a.op == SyscallArg::Op::kMaskedEq) {
      // OCI: (arg & value) == valueTwo.
      a.mask = value;
      a.value = two;
    } else {
      if (two != 0)
        return err(at(where, "valueTwo"), "is only used with SCMP_CMP_MASKED_EQ; remove it");
      a.value = value;
    }
    return a;
  }

  Result<std::vector<std::string>> names(const json& e, const std::string& where) {
    bool has_names = e.contains("names"), has_name = e.contains("name");
    if (has_names && has_name) return err(where, "has both 'name' and 'names'; keep 'names'");
    if (has_name) return std::vector<std::string>{TRY(string(e["name"], at(where, "name")))};
    if (!has_names) return err(where, "needs 'names', an array of syscall names");
    auto out = TRY(strings(e["names"], at(where, "names")));
    if (out.empty()) return err(at(where, "names"), "is empty; name at least one syscall");
    return out;
  }

  Result<void> entry(const json& e, const std::string& where, std::vector<SyscallRule>& out) {
    if (!e.is_object()) return err(where, "must be an object, not {}", kind(e));
    TRY(check_keys(
        e, where,
        {"names", "name", "action", "errnoRet", "args", "includes", "excludes", "comment"}));
    // Everything is checked before deciding whether the entry applies: a mistake in an entry
    // for another architecture is still a mistake.
    auto calls = TRY(names(e, where));
    if (!e.contains("action")) return err(where, "needs 'action', e.g. \"SCMP_ACT_ALLOW\"");
    SyscallRule rule;
    rule.action = TRY(action(e["action"], at(where, "action")));
    rule.errno_value = TRY(errno_ret(e, "errnoRet", where, rule.action));
    if (e.contains("args")) {
      const json& args = e["args"];
      if (!args.is_array()) return err(at(where, "args"), "must be an array, not {}", kind(args));
      for (std::size_t j = 0; j < args.size(); ++j)
        rule.args.push_back(TRY(arg(args[j], fmt::format("{}.args[{}]", where, j))));
    }
    std::optional<Filter> inc, exc;
    if (e.contains("includes")) inc = TRY(filter(e["includes"], at(where, "includes")));
    if (e.contains("excludes")) exc = TRY(filter(e["excludes"], at(where, "excludes")));
    if (e.contains("comment")) (void)TRY(string(e["comment"], at(where, "comment")));
    if (!applies(inc, exc)) return {};
    // A filter cannot test one argument twice in a rule: runc then makes each test its own rule
    // (any one of them matching), and profiles written for runc count on that.
    std::vector<std::vector<SyscallArg>> variants{rule.args};
    std::vector<int> seen(6, 0);
    for (const auto& a : rule.args) ++seen[a.index];
    if (std::any_of(seen.begin(), seen.end(), [](int n) { return n > 1; })) {
      variants.clear();
      for (const auto& a : rule.args) variants.push_back({a});
    }
    for (const auto& name : calls) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      // Negative numbers other than the error are other architectures' syscalls (socketcall,
      // _llseek): real names, with nothing to filter here, as under runc.
      if (nr == __NR_SCMP_ERROR) {
        warn(fmt::format("{}: syscall '{}' is not known on {}, skipped", path_, name,
                         kNative.uname));
        continue;
      }
      if (nr < 0) continue;
      for (const auto& args : variants) {
        SyscallRule r = rule;
        r.syscall = name;
        r.args = args;
        out.push_back(std::move(r));
      }
    }
    return {};
  }
};

// The byte offset of a parse error as line:column (both from 1).
std::pair<std::size_t, std::size_t> line_column(const std::string& text, std::size_t byte) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

}  // namespace

Result<SeccompPolicy> import_oci_seccomp(const std::string& path,
                                         std::vector<std::string>* warnings,
                                         const std::vector<int>& caps) {
  auto read = detail::read_policy_text(path);
  if (!read)
    return std::unexpected(
        common::context(read.error(), "{}: cannot read the seccomp profile", path));
  std::string text = std::move(*read);
  // nlohmann::json throws on syntax errors (and bad_alloc); none of it may leave the module.
  try {
    json root;
    try {
      root = json::parse(text);
    } catch (const json::parse_error& e) {
      // e.what() is "[json.exception.parse_error.101] parse error at line L, column C: why".
      std::string why = e.what();
      if (auto c = why.find("column"); c != std::string::npos) {
        if (auto colon = why.find(": ", c); colon != std::string::npos) why.erase(0, colon + 2);
      }
      // e.byte is one past the offending character.
      auto [line, col] = line_column(text, e.byte > 0 ? e.byte - 1 : 0);
      return common::fail(0, "{}:{}:{}: JSON syntax error: {}", path, line, col, why);
    }
    Importer importer(path, caps, warnings);
    return importer.import(root);
  } catch (const std::exception& e) {
    return common::fail(0, "{}: cannot import the seccomp profile: {}", path, e.what());
  }
}

}  // namespace policy
