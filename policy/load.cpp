// load_policy: a TOML policy file (and its includes) -> a validated JailSpec.
//
// Each file is applied on top of what its includes built, key by key, so a later file only
// changes what it names. Every value is checked where it is read, and every error carries the
// file, line and column of the offending key or value. toml++ throws; nothing thrown leaves here.
#include <arpa/inet.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "common/fd.hpp"
#include "common/sys.hpp"
#include "policy/detail/parse.hpp"
#include "policy/spec.hpp"

namespace policy {
namespace {

using common::Error;
using common::Result;

constexpr int kMaxIncludeDepth = 8;
constexpr std::size_t kMaxPolicyBytes = 1 << 20;  // hand-written policies are a few KiB

// Where a key was set, for checks that can only run once every file has been applied.
struct Located {
  std::string file;
  toml::source_region where;
};

// The spec under construction, plus what the final checks need to know about how it was built.
struct Draft {
  JailSpec spec = default_spec();
  std::optional<gid_t> group;  // unset: the same as the uid, as with --user UID
  std::vector<std::string> pass_env;
  std::string mode = "loopback";
  std::optional<Located> mode_set;
  std::optional<Located> first_network_rule;  // first egress/dns/hosts/publish entry
  std::vector<Located> cap_set;               // parallel to spec.caps
  std::optional<Located> seccomp_import;      // seccomp.profile = "oci:PATH"
};

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The closest candidate within two edits, as "; did you mean 'X'?", or "".
std::string suggest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = 3;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best.empty() ? std::string() : fmt::format("; did you mean '{}'?", best);
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    default:
      return "a date or time";
  }
}

std::string upper(std::string_view s) {
  std::string out;
  for (char c : s) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool valid_env_name(const std::string& name) {
  bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  return ok;
}

std::vector<std::string> syscall_names() {
  std::vector<std::string> out;
  for (int nr = 0; nr < 1024; ++nr) {
    // libseccomp returns a malloc'd name, or null for a number with no syscall.
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    if (name == nullptr) continue;
    out.emplace_back(name);
    std::free(name);
  }
  return out;
}

std::optional<int> errno_from_name(const std::string& name) {
  for (int e = 1; e < 4096; ++e) {
    const char* n = strerrorname_np(e);
    if (n != nullptr && name == n) return e;
  }
  return std::nullopt;
}

std::vector<std::string> errno_names() {
  std::vector<std::string> out;
  for (int e = 1; e < 4096; ++e)
    if (const char* n = strerrorname_np(e)) out.emplace_back(n);
  return out;
}

// Capabilities a jail cannot use whatever it is granted, because every seccomp profile denies
// the syscalls they exist for (unless a seccomp.rule allows one of them again).
struct UselessCap {
  int cap;
  const char* why;
  std::vector<std::string> syscalls;
};
const std::vector<UselessCap>& useless_caps() {
  static const std::vector<UselessCap> kCaps = {
      {CAP_SYS_PTRACE,
       "ptrace and process_vm_* are always denied",
       {"ptrace", "process_vm_readv", "process_vm_writev"}},
      {CAP_SYS_MODULE,
       "module loading is always denied",
       {"init_module", "finit_module", "delete_module"}},
      {CAP_SYS_BOOT,
       "reboot and kexec are always denied",
       {"reboot", "kexec_load", "kexec_file_load"}},
      {CAP_SYS_TIME,
       "setting the clock is always denied",
       {"settimeofday", "clock_settime", "clock_adjtime", "adjtimex"}},
      {CAP_SYSLOG, "syslog is always denied", {"syslog"}},
  };
  return kCaps;
}

}  // namespace

namespace detail {
// Reads a policy file: a regular file of at most kMaxPolicyBytes, nothing else. An include may
// name any path, and /dev/zero, /proc/kcore or a FIFO would never end (or block in open), while
// opening a device can act on it (a tape rewinds, a watchdog arms). Hence the type check before
// open, and again on the open file in case the path changed between the two.
Result<std::string> read_policy_text(const std::string& path) {
  std::error_code ec;  // a path that cannot be stat'ed fails in open, with its errno
  auto status = std::filesystem::status(path, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    return common::fail(0, "not a regular file");
  common::UniqueFd fd(sys::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) return common::fail(errno, "");
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return common::fail(errno, "");
  if (!S_ISREG(st.st_mode)) return common::fail(0, "not a regular file");
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = sys::read(fd.get(), buf, sizeof buf);
    if (n < 0) return common::fail(errno, "");
    if (n == 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxPolicyBytes)
      return common::fail(0, "larger than {} MiB, too large for a policy", kMaxPolicyBytes >> 20);
  }
}

}  // namespace detail

namespace {

using detail::read_policy_text;

// toml++ 3.3.0 (Debian bookworm) reaches __builtin_unreachable() when it checks some non-ASCII
// characters (U+00A1..U+0499, U+2C3E..U+3037, ...) for Unicode whitespace, which it does where
// it expects whitespace between tokens and after a line-ending backslash in a """ string. That
// is undefined behaviour on input a tenant may write, so such input never reaches the parser.
// Valid TOML has non-ASCII characters only inside strings and comments, so the only valid files
// refused are those with one right after a line-ending backslash.
Result<void> refuse_non_ascii_between_tokens(std::string_view text, const std::string& path) {
  enum class In { kCode, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral } in = In::kCode;
  int line = 1, col = 0;
  auto refuse = [&](const char* where) -> Result<void> {
    return common::fail(0,
                        "{}:{}:{}: a non-ASCII character {}; TOML allows them only inside strings "
                        "and comments",
                        path, line, col, where);
  };
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      col = 0;
    } else if ((c & 0xC0) != 0x80) {
      ++col;  // count characters, not UTF-8 continuation bytes
    }
    auto next_is = [&](std::string_view s) { return text.substr(i, s.size()) == s; };
    switch (in) {
      case In::kCode:
        if (c >= 0x80) return refuse("outside a string or comment");
        if (c == '#')
          in = In::kComment;
        else if (next_is("\"\"\""))
          in = In::kMultiBasic, i += 2, col += 2;
        else if (next_is("'''"))
          in = In::kMultiLiteral, i += 2, col += 2;
        else if (c == '"')
          in = In::kBasic;
        else if (c == '\'')
          in = In::kLiteral;
        break;
      case In::kComment:
        if (c == '\n') in = In::kCode;
        break;
      case In::kBasic:
        if (c == '\\')
          ++i;  // an escape: the next byte is part of it
        else if (c == '"' || c == '\n')
          in = In::kCode;
        break;
      case In::kLiteral:
        if (c == '\'' || c == '\n') in = In::kCode;
        break;
      case In::kMultiBasic:
        if (c == '\\') {
          size_t j = i + 1;
          while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) ++j;
          if (j < text.size() && text[j] == '\n') {
            // A line-ending backslash: the parser skips the whitespace that follows.
            while (j < text.size() && std::isspace(static_cast<unsigned char>(text[j]))) {
              if (text[j] == '\n')
                ++line, col = 0;
              else
                ++col;
              ++j;
            }
            i = j - 1;
            if (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x80) {
              ++col;  // the character itself
              return refuse("right after a line-ending backslash");
            }
          } else {
            ++i;  // an escape
          }
        } else if (next_is("\"\"\"")) {
          in = In::kCode, i += 2, col += 2;
        }
        break;
      case In::kMultiLiteral:
        if (next_is("'''")) in = In::kCode, i += 2, col += 2;
        break;
    }
  }
  return {};
}

class Loader {
 public:
  Result<JailSpec> load(const std::string& path) {
    TRY(load_file(path, nullptr));
    return finish();
  }

 private:
  Draft d_;
  std::string file_;                // the file being applied, as messages name it
  std::vector<std::string> stack_;  // canonical paths of the files being loaded (cycles)
  std::vector<std::string> chain_;  // the same, as messages name them

  template <class... Args>
  std::unexpected<Error> err(const toml::source_region& where, fmt::format_string<Args...> f,
                             Args&&... args) {
    return std::unexpected(
        Error{0, fmt::format("{}:{}:{}: {}", file_, where.begin.line, where.begin.column,
                             fmt::format(f, std::forward<Args>(args)...))});
  }

  // Rewrites a shared parser's error (which has no position) to point at the value.
  std::unexpected<Error> err_from(const toml::node& n, const Error& e) {
    return err(n.source(), "{}", e.what);
  }

  Result<void> load_file(const std::string& path, const toml::node* included_at) {
    std::string saved_file = file_;
    std::error_code ec;
    std::string canonical = std::filesystem::weakly_canonical(path, ec).string();
    if (ec) canonical = path;
    if (included_at != nullptr) {
      if (std::find(stack_.begin(), stack_.end(), canonical) != stack_.end())
        return err(included_at->source(), "include cycle: {} -> {}; remove one of the includes",
                   join(chain_, " -> "), path);
      if (static_cast<int>(stack_.size()) > kMaxIncludeDepth)
        return err(included_at->source(),
                   "includes nest more than {} levels deep ({} -> {}); flatten some of them",
                   kMaxIncludeDepth, join(chain_, " -> "), path);
    }
    auto text = read_policy_text(path);
    if (!text) {
      const Error& e = text.error();
      if (included_at != nullptr)
        return err(included_at->source(),
                   "cannot include '{}': {}; check the path (it is "
                   "relative to the including file)",
                   path, e.err != 0 ? std::strerror(e.err) : e.what);
      return std::unexpected(common::context(e, "{}: cannot read the policy", path));
    }
    toml::table root;
    try {
      TRY(refuse_non_ascii_between_tokens(*text, path));
      root = toml::parse(*text, path);
    } catch (const toml::parse_error& e) {
      const auto& b = e.source().begin;
      return common::fail(0, "{}:{}:{}: TOML syntax error: {}", path, b.line, b.column,
                          e.description());
    }
    file_ = path;
    stack_.push_back(canonical);
    chain_.push_back(path);
    TRY(apply_root(root));
    stack_.pop_back();
    chain_.pop_back();
    file_ = saved_file;
    return {};
  }

  // --- generic checks -------------------------------------------------------------------------

  Result<void> check_keys(const toml::table& t, std::string_view section,
                          const std::vector<std::string>& allowed) {
    for (auto&& [k, v] : t) {
      std::string key(k.str());
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string hint = suggest(key, allowed);
      if (hint.empty()) hint = fmt::format("; use one of {}", join(allowed));
      return err(k.source(), "unknown key '{}' in {}{}", key, section, hint);
    }
    return {};
  }

  Result<const toml::table*> table(const toml::node& n, std::string_view key) {
    if (!n.is_table()) return err(n.source(), "'{}' must be a table, not {}", key, type_name(n));
    return n.as_table();
  }

  Result<std::string> string(const toml::node& n, std::string_view key) {
    if (!n.is_string()) return err(n.source(), "'{}' must be a string, not {}", key, type_name(n));
    return n.as_string()->get();
  }

  Result<std::int64_t> integer(const toml::node& n, std::string_view key, std::int64_t lo,
                               std::int64_t hi) {
    if (!n.is_integer())
      return err(n.source(), "'{}' must be an integer, not {}", key, type_name(n));
    std::int64_t v = n.as_integer()->get();
    if (v < lo || v > hi) return err(n.source(), "'{}' must be between {} and {}", key, lo, hi);
    return v;
  }

  // 65534 and above are the kernel's overflow and invalid ids.
  Result<std::uint32_t> id(const toml::node& n, std::string_view key) {
    if (!n.is_integer())
      return err(n.source(), "'{}' must be an integer, not {}", key, type_name(n));
    std::int64_t v = n.as_integer()->get();
    if (v < 0 || v >= 65534)
      return err(n.source(),
                 "'{}' must be between 0 and 65533 (65534 and up are the kernel's "
                 "overflow ids)",
                 key);
    return static_cast<std::uint32_t>(v);
  }

  Result<double> seconds(const toml::node& n, std::string_view key) {
    double v;
    if (n.is_integer())
      v = static_cast<double>(n.as_integer()->get());
    else if (n.is_floating_point())
      v = n.as_floating_point()->get();
    else
      return err(n.source(), "'{}' must be a number of seconds, not {}", key, type_name(n));
    if (!(v >= 0) || v > 1e9) return err(n.source(), "'{}' must be 0 or more seconds", key);
    return v;
  }

  // A byte count: an integer, or a string such as "64M".
  Result<std::uint64_t> size(const toml::node& n, std::string_view key) {
    if (n.is_integer()) return static_cast<std::uint64_t>(TRY(integer(n, key, 0, INT64_MAX)));
    if (!n.is_string())
      return err(n.source(), "'{}' must be a size such as \"64M\" or 4096, not {}", key,
                 type_name(n));
    auto s = parse_size(n.as_string()->get());
    if (!s)
      return err(n.source(), "'{}': '{}' is not a size (use 4096, \"64K\", \"512M\" or \"2G\")",
                 key, n.as_string()->get());
    return *s;
  }

  Result<std::vector<const toml::node*>> array(const toml::node& n, std::string_view key,
                                               toml::node_type elem, const char* elem_name) {
    if (!n.is_array()) return err(n.source(), "'{}' must be an array, not {}", key, type_name(n));
    std::vector<const toml::node*> out;
    for (const toml::node& e : *n.as_array()) {
      if (e.type() != elem)
        return err(e.source(), "'{}' must hold only {}, not {}", key, elem_name, type_name(e));
      out.push_back(&e);
    }
    return out;
  }

  Result<std::vector<std::string>> strings(const toml::node& n, std::string_view key) {
    std::vector<std::string> out;
    for (auto* e : TRY(array(n, key, toml::node_type::string, "strings")))
      out.push_back(e->as_string()->get());
    return out;
  }

  // An absolute host path that exists.
  Result<std::string> host_path(const toml::node& n, std::string_view key) {
    std::string s = TRY(string(n, key));
    if (s.empty() || s[0] != '/')
      return err(n.source(),
                 "'{}' '{}': a host path must be absolute (start with '/'); it is not relative to "
                 "the policy file",
                 key, s);
    std::error_code ec;
    if (!std::filesystem::exists(s, ec))
      return err(n.source(), "'{}' '{}' does not exist on this host; create it or fix the path",
                 key, s);
    return std::filesystem::path(s).lexically_normal().string();
  }

  Result<std::string> jail_path(const toml::node& n, std::string_view key) {
    std::string s = TRY(string(n, key));
    auto p = detail::normalize_jail_path(fmt::format("'{}'", key), s);
    if (!p) return err_from(n, p.error());
    return *p;
  }

  void note_network_rule(const toml::node& n) {
    if (!d_.first_network_rule) d_.first_network_rule = Located{file_, n.source()};
  }

  // --- sections -------------------------------------------------------------------------------

  Result<void> apply_root(const toml::table& root) {
    TRY(check_keys(root, "the top level",
                   {"include", "process", "filesystem", "capabilities", "seccomp", "limits",
                    "cgroup", "network"}));
    if (const toml::node* inc = root.get("include")) {
      for (const toml::node* e : TRY(array(*inc, "include", toml::node_type::string, "strings"))) {
        std::string name = e->as_string()->get();
        if (name.empty()) return err(e->source(), "'include' names an empty path");
        auto p = std::filesystem::path(file_).parent_path() / name;
        TRY(load_file(p.lexically_normal().string(), e));
      }
    }
    if (auto* n = root.get("process")) TRY(apply_process(*TRY(table(*n, "process"))));
    if (auto* n = root.get("filesystem")) TRY(apply_filesystem(*TRY(table(*n, "filesystem"))));
    if (auto* n = root.get("capabilities"))
      TRY(apply_capabilities(*TRY(table(*n, "capabilities"))));
    if (auto* n = root.get("seccomp")) TRY(apply_seccomp(*TRY(table(*n, "seccomp"))));
    if (auto* n = root.get("limits")) TRY(apply_limits(*TRY(table(*n, "limits"))));
    if (auto* n = root.get("cgroup")) TRY(apply_cgroup(*TRY(table(*n, "cgroup"))));
    if (auto* n = root.get("network")) TRY(apply_network(*TRY(table(*n, "network"))));
    return {};
  }

  Result<void> apply_process(const toml::table& t) {
    TRY(check_keys(t, "[process]",
                   {"command", "user", "group", "cwd", "hostname", "env", "pass_env", "time_limit",
                    "kill_grace"}));
    JailSpec& s = d_.spec;
    if (auto* n = t.get("command")) {
      auto argv = TRY(strings(*n, "command"));
      if (argv.empty() || argv[0].empty())
        return err(n->source(),
                   "'command' must name a program, e.g. [\"/bin/sh\", \"-c\", \"...\"]");
      s.argv = argv;
    }
    if (auto* n = t.get("user")) s.uid = static_cast<uid_t>(TRY(id(*n, "user")));
    if (auto* n = t.get("group")) d_.group = static_cast<gid_t>(TRY(id(*n, "group")));
    if (auto* n = t.get("cwd")) s.cwd = TRY(jail_path(*n, "cwd"));
    if (auto* n = t.get("hostname")) {
      std::string h = TRY(string(*n, "hostname"));
      if (!detail::valid_hostname(h))
        return err(n->source(), "'hostname' '{}': use up to 64 letters, digits, '-' and '.'", h);
      s.hostname = h;
    }
    if (auto* n = t.get("env")) {
      for (auto&& [k, v] : *TRY(table(*n, "env"))) {
        std::string name(k.str());
        if (!valid_env_name(name))
          return err(k.source(), "'{}' is not a valid variable name (letters, digits and '_')",
                     name);
        set_env(name, TRY(string(v, name)));
      }
    }
    if (auto* n = t.get("pass_env")) {
      d_.pass_env.clear();
      for (auto* e : TRY(array(*n, "pass_env", toml::node_type::string, "strings"))) {
        std::string name = e->as_string()->get();
        if (!valid_env_name(name))
          return err(e->source(), "'{}' is not a valid variable name (letters, digits and '_')",
                     name);
        d_.pass_env.push_back(name);
      }
    }
    if (auto* n = t.get("time_limit")) s.time_limit = TRY(seconds(*n, "time_limit"));
    if (auto* n = t.get("kill_grace")) s.kill_grace = TRY(seconds(*n, "kill_grace"));
    return {};
  }

  void set_env(const std::string& name, const std::string& value) {
    std::string kv = name + "=" + value;
    for (auto& e : d_.spec.env)
      if (e.starts_with(name + "=")) {
        e = kv;
        return;
      }
    d_.spec.env.push_back(kv);
  }

  Result<void> apply_filesystem(const toml::table& t) {
    TRY(check_keys(t, "[filesystem]", {"chroot", "tmp_size", "mount", "devices"}));
    if (auto* n = t.get("chroot")) {
      std::string root = TRY(host_path(*n, "chroot"));
      std::error_code ec;
      if (!std::filesystem::is_directory(root, ec))
        return err(n->source(), "'chroot' '{}' is not a directory; give a prepared rootfs", root);
      d_.spec.chroot = root;
    }
    if (auto* n = t.get("tmp_size")) d_.spec.tmp_size = TRY(size(*n, "tmp_size"));
    if (auto* n = t.get("devices")) {
      for (auto* e : TRY(array(*n, "devices", toml::node_type::string, "strings"))) {
        auto dev = parse_device(e->as_string()->get());
        if (!dev) return err(e->source(), "{}", dev.error().what);
        std::erase_if(d_.spec.devices, [&](const Device& x) { return x.path == dev->path; });
        d_.spec.devices.push_back(*dev);
      }
    }
    if (auto* n = t.get("mount")) {
      for (auto* e : TRY(array(*n, "mount", toml::node_type::table, "tables")))
        d_.spec.mounts.push_back(TRY(mount(*e->as_table())));
    }
    return {};
  }

  Result<Mount> mount(const toml::table& t) {
    TRY(check_keys(t, "[[filesystem.mount]]", {"type", "src", "dst", "size"}));
    const toml::node* type = t.get("type");
    if (type == nullptr)
      return err(t.source(), "[[filesystem.mount]] needs a 'type': bind, ro-bind or tmpfs");
    std::string kind = TRY(string(*type, "type"));
    Mount m;
    if (kind == "tmpfs") {
      m.kind = Mount::Kind::kTmpfs;
      m.read_only = false;
      m.size = 64ull << 20;
      if (auto* n = t.get("src"))
        return err(n->source(), "'src' is not used by a tmpfs mount; remove it");
      if (auto* n = t.get("size")) m.size = TRY(size(*n, "size"));
      const toml::node* dst = t.get("dst");
      if (dst == nullptr) return err(t.source(), "a tmpfs mount needs 'dst' (a path in the jail)");
      m.dst = TRY(jail_path(*dst, "dst"));
      if (m.dst == "/") return err(dst->source(), "'dst' '/': the jail's root is already a tmpfs");
      return m;
    }
    if (kind != "bind" && kind != "ro-bind")
      return err(type->source(), "mount type '{}' unknown; use bind, ro-bind or tmpfs{}", kind,
                 suggest(kind, {"bind", "ro-bind", "tmpfs"}));
    m.kind = Mount::Kind::kBind;
    m.read_only = kind == "ro-bind";
    if (auto* n = t.get("size"))
      return err(n->source(), "'size' is only for tmpfs mounts; remove it");
    const toml::node* src = t.get("src");
    if (src == nullptr) return err(t.source(), "a {} mount needs 'src' (a host path)", kind);
    m.src = TRY(host_path(*src, "src"));
    const toml::node* dst = t.get("dst");
    m.dst = dst == nullptr ? m.src : TRY(jail_path(*dst, "dst"));
    if (m.dst == "/")
      return err((dst != nullptr ? dst : src)->source(),
                 "cannot mount over the jail's root; use filesystem.chroot for a prepared rootfs");
    return m;
  }

  Result<void> apply_capabilities(const toml::table& t) {
    TRY(check_keys(t, "[capabilities]", {"allow"}));
    if (auto* n = t.get("allow")) {
      // A later file's list replaces the earlier one, like any other key.
      d_.spec.caps.clear();
      d_.cap_set.clear();
      for (auto* e : TRY(array(*n, "allow", toml::node_type::string, "strings"))) {
        std::string name = e->as_string()->get();
        auto v = detail::cap_from_user_name(name);
        if (!v) {
          std::string bare = upper(name);
          if (bare.starts_with("CAP_")) bare.erase(0, 4);
          std::string hint = suggest(bare, detail::all_cap_names());
          if (hint.empty()) hint = "; use a name such as NET_BIND_SERVICE (see capabilities(7))";
          return err(e->source(), "capability '{}' unknown{}", name, hint);
        }
        if (std::find(d_.spec.caps.begin(), d_.spec.caps.end(), *v) != d_.spec.caps.end()) continue;
        d_.spec.caps.push_back(*v);
        d_.cap_set.push_back(Located{file_, e->source()});
      }
    }
    return {};
  }

  Result<void> apply_seccomp(const toml::table& t) {
    TRY(check_keys(t, "[seccomp]", {"profile", "rule"}));
    if (auto* n = t.get("profile")) {
      std::string p = TRY(string(*n, "profile"));
      if (p.starts_with("oci:")) {
        // Imported in finish(), once the capabilities its entries may depend on are final.
        if (!p.starts_with("oci:/"))
          return err(n->source(),
                     "seccomp profile '{}': the path after 'oci:' must be absolute; it is not "
                     "relative to the policy file",
                     p);
        d_.seccomp_import = Located{file_, n->source()};
      } else if (p != "default" && p != "strict") {
        return err(
            n->source(),
            "seccomp profile '{}' unknown; use default, strict or \"oci:/path/profile.json\"{}", p,
            suggest(p, {"default", "strict"}));
      }
      d_.spec.seccomp.profile = p;
    }
    if (auto* n = t.get("rule")) {
      for (auto* e : TRY(array(*n, "rule", toml::node_type::table, "tables")))
        d_.spec.seccomp.rules.push_back(TRY(rule(*e->as_table())));
    }
    return {};
  }

  Result<SyscallRule> rule(const toml::table& t) {
    TRY(check_keys(t, "[[seccomp.rule]]", {"syscall", "action", "errno", "args"}));
    SyscallRule r;
    const toml::node* sc = t.get("syscall");
    if (sc == nullptr) return err(t.source(), "[[seccomp.rule]] needs 'syscall'");
    r.syscall = TRY(string(*sc, "syscall"));
    if (seccomp_syscall_resolve_name(r.syscall.c_str()) == __NR_SCMP_ERROR)
      return err(sc->source(), "syscall '{}' unknown on this architecture{}", r.syscall,
                 suggest(r.syscall, syscall_names()));
    const toml::node* act = t.get("action");
    if (act == nullptr)
      return err(t.source(), "[[seccomp.rule]] needs 'action': allow, errno, kill or log");
    std::string a = TRY(string(*act, "action"));
    static const std::map<std::string, SeccompAction> kActions = {{"allow", SeccompAction::kAllow},
                                                                  {"errno", SeccompAction::kErrno},
                                                                  {"kill", SeccompAction::kKill},
                                                                  {"log", SeccompAction::kLog}};
    auto it = kActions.find(a);
    if (it == kActions.end())
      return err(act->source(), "action '{}' unknown; use allow, errno, kill or log{}", a,
                 suggest(a, {"allow", "errno", "kill", "log"}));
    r.action = it->second;
    if (auto* n = t.get("errno")) {
      if (r.action != SeccompAction::kErrno)
        return err(n->source(), "'errno' is only used with action = \"errno\"; remove it");
      std::string name = TRY(string(*n, "errno"));
      auto e = errno_from_name(name);
      if (!e)
        return err(n->source(), "errno '{}' unknown; use a name such as EPERM or EACCES{}", name,
                   suggest(name, errno_names()));
      r.errno_value = *e;
    }
    if (auto* n = t.get("args")) {
      std::vector<bool> seen(6, false);
      for (auto* e : TRY(array(*n, "args", toml::node_type::table, "tables"))) {
        SyscallArg arg = TRY(syscall_arg(*e->as_table()));
        // libseccomp cannot compare one argument twice in a rule.
        if (seen[arg.index])
          return err(e->source(),
                     "argument {} is tested twice in one rule; split it into two rules", arg.index);
        seen[arg.index] = true;
        r.args.push_back(arg);
      }
    }
    return r;
  }

  Result<SyscallArg> syscall_arg(const toml::table& t) {
    TRY(check_keys(t, "seccomp.rule args", {"index", "op", "value", "mask"}));
    SyscallArg a;
    const toml::node* idx = t.get("index");
    if (idx == nullptr) return err(t.source(), "an entry of 'args' needs 'index' (0 to 5)");
    a.index = static_cast<unsigned>(TRY(integer(*idx, "index", 0, 5)));
    static const std::map<std::string, SyscallArg::Op> kOps = {
        {"eq", SyscallArg::Op::kEq},
        {"ne", SyscallArg::Op::kNe},
        {"lt", SyscallArg::Op::kLt},
        {"le", SyscallArg::Op::kLe},
        {"gt", SyscallArg::Op::kGt},
        {"ge", SyscallArg::Op::kGe},
        {"masked_eq", SyscallArg::Op::kMaskedEq}};
    if (auto* n = t.get("op")) {
      std::string op = TRY(string(*n, "op"));
      auto it = kOps.find(op);
      if (it == kOps.end())
        return err(n->source(), "op '{}' unknown; use eq, ne, lt, le, gt, ge or masked_eq{}", op,
                   suggest(op, {"eq", "ne", "lt", "le", "gt", "ge", "masked_eq"}));
      a.op = it->second;
    }
    const toml::node* value = t.get("value");
    if (value == nullptr) return err(t.source(), "an entry of 'args' needs 'value'");
    a.value = static_cast<std::uint64_t>(TRY(integer(*value, "value", 0, INT64_MAX)));
    const toml::node* mask = t.get("mask");
    if (a.op == SyscallArg::Op::kMaskedEq) {
      if (mask == nullptr) return err(t.source(), "op \"masked_eq\" needs 'mask'");
      a.mask = static_cast<std::uint64_t>(TRY(integer(*mask, "mask", 0, INT64_MAX)));
    } else if (mask != nullptr) {
      return err(mask->source(), "'mask' is only used with op = \"masked_eq\"; remove it");
    }
    return a;
  }

  Result<void> apply_limits(const toml::table& t) {
    TRY(check_keys(t, "[limits]",
                   {"as", "core", "cpu", "data", "fsize", "memlock", "nofile", "nproc", "stack"}));
    for (auto&& [k, v] : t) {
      std::string name(k.str());
      Rlimit r;
      r.resource = *rlimit_from_name(name);
      if (v.is_table()) {
        const toml::table& st = *v.as_table();
        TRY(check_keys(st, fmt::format("limits.{}", name), {"soft", "hard"}));
        const toml::node* soft = st.get("soft");
        const toml::node* hard = st.get("hard");
        if (soft == nullptr || hard == nullptr)
          return err(v.source(), "limits.{} needs both 'soft' and 'hard'", name);
        r.soft = TRY(limit_value(*soft, name, r.resource));
        r.hard = TRY(limit_value(*hard, name, r.resource));
        if (r.soft > r.hard)
          return err(v.source(), "limits.{}: the soft limit is above the hard limit", name);
      } else {
        r.soft = r.hard = TRY(limit_value(v, name, r.resource));
      }
      auto same = std::find_if(d_.spec.rlimits.begin(), d_.spec.rlimits.end(),
                               [&](const Rlimit& x) { return x.resource == r.resource; });
      if (same != d_.spec.rlimits.end())
        *same = r;
      else
        d_.spec.rlimits.push_back(r);
    }
    return {};
  }

  Result<std::uint64_t> limit_value(const toml::node& n, const std::string& name, int resource) {
    if (n.is_string() && n.as_string()->get() == "inf") return RLIM_INFINITY;
    bool bytes = detail::rlimit_in_bytes(resource);
    if (bytes) {
      if (n.is_integer() || n.is_string()) return size(n, name);
    } else if (n.is_integer()) {
      return static_cast<std::uint64_t>(TRY(integer(n, name, 0, INT64_MAX)));
    }
    return err(n.source(), "'{}' must be {} or \"inf\", not {}", name,
               bytes ? "a size such as \"64M\" or 4096" : "an integer", type_name(n));
  }

  Result<void> apply_cgroup(const toml::table& t) {
    TRY(check_keys(t, "[cgroup]", {"memory", "pids", "cpu_ms_per_sec"}));
    CgroupLimits& c = d_.spec.cgroup;
    if (auto* n = t.get("memory")) {
      c.memory_bytes = TRY(size(*n, "memory"));
      if (*c.memory_bytes == 0) return err(n->source(), "'memory' must be more than 0");
    }
    if (auto* n = t.get("pids")) c.pids = TRY(integer(*n, "pids", 1, 4194304));
    if (auto* n = t.get("cpu_ms_per_sec"))
      c.cpu_ms_per_sec = TRY(integer(*n, "cpu_ms_per_sec", 1, 1000000));
    return {};
  }

  Result<void> apply_network(const toml::table& t) {
    TRY(check_keys(t, "[network]",
                   {"mode", "bridge", "subnet4", "subnet6", "dns", "hosts", "egress", "publish"}));
    NetworkPolicy& net = d_.spec.network;
    if (auto* n = t.get("bridge")) {
      net.bridge = TRY(string(*n, "bridge"));
      if (auto why = detail::bad_bridge_name(net.bridge))
        return err(n->source(), "bridge '{}' {}", net.bridge, *why);
    }
    for (const char* key : {"subnet4", "subnet6"}) {
      auto* n = t.get(key);
      if (n == nullptr) continue;
      std::string v = TRY(string(*n, key));
      TRY(check_cidr(*n, v));
      bool six = key[6] == '6';
      if (auto why = detail::bad_subnet(v, six))
        return err(n->source(), "{} '{}' {}", key, v, *why);
      (six ? net.subnet6 : net.subnet4) = v;
    }
    if (auto* n = t.get("mode")) {
      std::string m = TRY(string(*n, "mode"));
      if (m != "none" && m != "loopback" && m != "bridge")
        return err(n->source(), "network mode '{}' unknown; use none, loopback or bridge{}", m,
                   suggest(m, {"none", "loopback", "bridge"}));
      d_.mode = m;
      d_.mode_set = Located{file_, n->source()};
    }
    if (auto* n = t.get("dns")) {
      net.dns.clear();
      for (auto* e : TRY(array(*n, "dns", toml::node_type::string, "strings"))) {
        std::string ip = e->as_string()->get();
        unsigned char buf[16];
        if (inet_pton(AF_INET, ip.c_str(), buf) != 1 && inet_pton(AF_INET6, ip.c_str(), buf) != 1)
          return err(e->source(), "dns '{}' is not an IP address, e.g. \"192.0.2.53\"", ip);
        net.dns.push_back(ip);
        note_network_rule(*e);
      }
    }
    if (auto* n = t.get("hosts")) {
      net.hosts.clear();
      for (auto* e : TRY(array(*n, "hosts", toml::node_type::string, "strings"))) {
        std::string h = e->as_string()->get();
        if (!valid_host_name(h))
          return err(e->source(), "hosts '{}' is not a host name, e.g. \"mirror.example.org\"", h);
        net.hosts.push_back(h);
        note_network_rule(*e);
      }
    }
    if (auto* n = t.get("egress")) {
      for (auto* e : TRY(array(*n, "egress", toml::node_type::table, "tables"))) {
        net.egress.push_back(TRY(egress(*e->as_table())));
        note_network_rule(*e);
      }
    }
    if (auto* n = t.get("publish")) {
      for (auto* e : TRY(array(*n, "publish", toml::node_type::table, "tables"))) {
        PublishedPort p = TRY(publish(*e->as_table()));
        for (const auto& q : net.publish)
          if (q.host_port == p.host_port && q.proto == p.proto)
            return err(e->source(), "host port {}/{} is published twice; keep one", p.host_port,
                       p.proto);
        net.publish.push_back(p);
        note_network_rule(*e);
      }
    }
    return {};
  }

  static bool valid_host_name(const std::string& h) {
    if (h.empty() || h.size() > 253) return false;
    std::size_t label = 0;
    for (char c : h) {
      if (c == '.') {
        if (label == 0) return false;
        label = 0;
        continue;
      }
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
      if (++label > 63) return false;
    }
    return label > 0;
  }

  Result<EgressRule> egress(const toml::table& t) {
    TRY(check_keys(t, "[[network.egress]]", {"cidr", "proto", "ports"}));
    EgressRule r;
    const toml::node* cidr = t.get("cidr");
    if (cidr == nullptr)
      return err(t.source(), "[[network.egress]] needs 'cidr', e.g. \"203.0.113.0/24\"");
    r.cidr = TRY(string(*cidr, "cidr"));
    TRY(check_cidr(*cidr, r.cidr));
    if (auto* n = t.get("proto")) {
      r.proto = TRY(string(*n, "proto"));
      if (r.proto != "tcp" && r.proto != "udp" && r.proto != "icmp" && r.proto != "any")
        return err(n->source(), "proto '{}' unknown; use tcp, udp, icmp or any{}", r.proto,
                   suggest(r.proto, {"tcp", "udp", "icmp", "any"}));
    }
    if (auto* n = t.get("ports")) {
      if (r.proto == "icmp")
        return err(n->source(), "'ports' does not apply to icmp; remove it or change 'proto'");
      if (n->is_integer()) {
        r.port_first = r.port_last =
            static_cast<std::uint16_t>(TRY(integer(*n, "ports", 1, 65535)));
      } else if (n->is_string()) {
        std::string s = n->as_string()->get();
        auto dash = s.find('-');
        auto first = detail::parse_number<std::uint16_t>(s.substr(0, dash));
        auto last = dash == std::string::npos
                        ? first
                        : detail::parse_number<std::uint16_t>(s.substr(dash + 1));
        if (!first || !last || *first == 0 || *first > *last)
          return err(n->source(),
                     "ports '{}' is not a port or range; use \"443\" or \"8000-8100\" (1 to "
                     "65535, low to high)",
                     s);
        r.port_first = *first;
        r.port_last = *last;
      } else {
        return err(n->source(), "'ports' must be a port (443) or a range (\"8000-8100\"), not {}",
                   type_name(*n));
      }
    }
    return r;
  }

  Result<void> check_cidr(const toml::node& n, const std::string& cidr) {
    auto slash = cidr.find('/');
    std::string addr = cidr.substr(0, slash);
    unsigned char buf[16] = {};
    int family = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    unsigned max = family == AF_INET6 ? 128 : 32;
    auto prefix = slash == std::string::npos
                      ? std::nullopt
                      : detail::parse_number<unsigned>(std::string_view(cidr).substr(slash + 1));
    if (inet_pton(family, addr.c_str(), buf) != 1 || !prefix || *prefix > max)
      return err(n.source(),
                 "cidr '{}' is malformed; use ADDRESS/PREFIX such as \"203.0.113.0/24\" or "
                 "\"2001:db8::/32\"",
                 cidr);
    // Host bits set usually mean a typo in the address or the prefix.
    for (unsigned bit = *prefix; bit < max; ++bit)
      if (buf[bit / 8] & (0x80 >> (bit % 8))) {
        for (unsigned b = *prefix; b < max; ++b)
          buf[b / 8] &= static_cast<unsigned char>(~(0x80 >> (b % 8)));
        char net[INET6_ADDRSTRLEN];
        inet_ntop(family, buf, net, sizeof net);
        return err(n.source(), "cidr '{}' has host bits set; did you mean '{}/{}'?", cidr, net,
                   *prefix);
      }
    return {};
  }

  Result<PublishedPort> publish(const toml::table& t) {
    TRY(check_keys(t, "[[network.publish]]", {"host_port", "jail_port", "proto"}));
    PublishedPort p;
    const toml::node* host = t.get("host_port");
    const toml::node* jail = t.get("jail_port");
    if (host == nullptr || jail == nullptr)
      return err(t.source(), "[[network.publish]] needs both 'host_port' and 'jail_port'");
    p.host_port = static_cast<std::uint16_t>(TRY(integer(*host, "host_port", 1, 65535)));
    p.jail_port = static_cast<std::uint16_t>(TRY(integer(*jail, "jail_port", 1, 65535)));
    if (auto* n = t.get("proto")) {
      p.proto = TRY(string(*n, "proto"));
      if (p.proto != "tcp" && p.proto != "udp")
        return err(n->source(), "proto '{}' unknown; use tcp or udp{}", p.proto,
                   suggest(p.proto, {"tcp", "udp"}));
    }
    return p;
  }

  // --- after every file -----------------------------------------------------------------------

  template <class... Args>
  std::unexpected<Error> err_located(const Located& l, fmt::format_string<Args...> f,
                                     Args&&... args) {
    file_ = l.file;
    return err(l.where, f, std::forward<Args>(args)...);
  }

  Result<JailSpec> finish() {
    JailSpec& s = d_.spec;
    s.gid = d_.group.value_or(s.uid);
    // pass_env takes the host's value when stockade reads the policy; an unset variable is
    // skipped, as a terminal setting such as TERM is often absent.
    for (const auto& name : d_.pass_env)
      if (const char* v = std::getenv(name.c_str())) set_env(name, v);
    // A canonical order (PATH, HOME, then by name; rlimits by resource) so that the same policy
    // gives the same spec however its files were split.
    auto rank = [](const std::string& e) {
      std::string name = e.substr(0, e.find('='));
      return std::make_pair(name == "PATH" ? 0 : name == "HOME" ? 1 : 2, name);
    };
    std::stable_sort(s.env.begin(), s.env.end(),
                     [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
    std::stable_sort(s.rlimits.begin(), s.rlimits.end(),
                     [](const Rlimit& a, const Rlimit& b) { return a.resource < b.resource; });
    s.net = d_.mode == "none"     ? NetMode::kNone
            : d_.mode == "bridge" ? NetMode::kBridge
                                  : NetMode::kLoopback;
    if (d_.mode == "none" && s.network.any() && d_.mode_set) {
      const Located& rule = *d_.first_network_rule;
      return err_located(*d_.mode_set,
                         "network mode \"none\" contradicts the network rules ({}:{}): a jail "
                         "without a network cannot use egress, dns, hosts or publish; remove "
                         "them or use mode = \"bridge\"",
                         rule.file, rule.where.begin.line);
    }
    if (s.seccomp.profile.starts_with("oci:")) TRY(import_seccomp(s));
    for (std::size_t i = 0; i < s.caps.size(); ++i) {
      for (const auto& u : useless_caps()) {
        if (u.cap != s.caps[i]) continue;
        auto allows = [&](auto& r) {
          return (r.action == SeccompAction::kAllow || r.action == SeccompAction::kLog) &&
                 std::find(u.syscalls.begin(), u.syscalls.end(), r.syscall) != u.syscalls.end();
        };
        // An imported profile decides for itself what it denies.
        bool reallowed =
            std::any_of(s.seccomp.rules.begin(), s.seccomp.rules.end(), allows) ||
            std::any_of(s.seccomp.base_rules.begin(), s.seccomp.base_rules.end(), allows) ||
            (s.seccomp.profile.starts_with("oci:") &&
             s.seccomp.default_action != SeccompAction::kErrno &&
             s.seccomp.default_action != SeccompAction::kKill);
        if (!reallowed)
          return err_located(d_.cap_set[i],
                             "capability '{}' is useless here: {} by the seccomp profile; "
                             "remove it",
                             detail::cap_display_name(u.cap), u.why);
      }
    }
    return std::move(d_.spec);
  }

  // The final capabilities decide which of the profile's entries apply. Errors point at the
  // profile key; warnings (skipped syscalls) travel in the profile, as the load succeeds.
  Result<void> import_seccomp(JailSpec& s) {
    std::vector<std::string> warnings;
    auto imported = import_oci_seccomp(s.seccomp.profile.substr(4), &warnings, s.caps);
    if (!imported) return err_located(*d_.seccomp_import, "{}", imported.error().message());
    imported->import_warnings = std::move(warnings);
    imported->rules = std::move(s.seccomp.rules);
    s.seccomp = std::move(*imported);
    return {};
  }
};

}  // namespace

Result<JailSpec> load_policy(const std::string& path) {
  // toml++ and the standard library may throw (bad_alloc, filesystem errors); none of it may
  // escape the policy module.
  try {
    Loader loader;
    return loader.load(path);
  } catch (const std::exception& e) {
    return common::fail(0, "{}: cannot load the policy: {}", path, e.what());
  }
}

}  // namespace policy
