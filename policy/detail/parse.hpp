// Parsers shared by the flag path (flags.cpp) and the policy-file path (load.cpp), so a value
// means the same thing whichever way it arrives. Internal to the policy module.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "policy/spec.hpp"

namespace policy::detail {

template <class T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// "/a/./b//c/" -> "/a/b/c"; rejects relative paths and "..". `what` starts the error message.
common::Result<std::string> normalize_jail_path(const std::string& what, const std::string& path);

// A host path made absolute (against the cwd) and lexically normal.
common::Result<std::string> absolute_host_path(const std::string& what, const std::string& path);

// "NET_BIND_SERVICE", "net_bind_service" or "CAP_NET_BIND_SERVICE" -> cap_value_t.
std::optional<int> cap_from_user_name(const std::string& name);
// CAP_NET_BIND_SERVICE -> "NET_BIND_SERVICE".
std::string cap_display_name(int cap);
// Every capability this libcap knows, as cap_display_name gives them.
std::vector<std::string> all_cap_names();

// True for a byte-valued rlimit (as, core, data, fsize, memlock, stack).
bool rlimit_in_bytes(int resource);
// The name rlimit_from_name takes ("nofile" for RLIMIT_NOFILE).
std::string rlimit_name(int resource);

bool valid_hostname(const std::string& h);

// Why a bridge name cannot be used (length, characters, the "stk" prefix of jail ports), or
// nothing if it can.
std::optional<std::string> bad_bridge_name(const std::string& name);
// Why a CIDR cannot be a bridge's network (family, prefix too long or too short), or nothing.
std::optional<std::string> bad_subnet(const std::string& cidr, bool v6);

// PATH and HOME, as every jail starts with.
std::vector<std::string> default_env();

// A policy or profile file's text: a regular file of at most 1 MiB, nothing else (not a FIFO,
// a device or /proc/kcore). Errors carry the errno or the reason, not the path.
common::Result<std::string> read_policy_text(const std::string& path);

}  // namespace policy::detail
