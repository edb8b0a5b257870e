// Addresses as netjail passes them around: bytes in network order, ready for netlink.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace netjail::detail {

struct Mac {
  std::array<std::uint8_t, 6> b{};
  std::string str() const;
  bool operator==(const Mac&) const = default;
};

// An IPv4 (first 4 bytes used) or IPv6 address with a prefix length.
struct Addr {
  int family = AF_INET;
  std::array<std::uint8_t, 16> b{};
  int prefix = 32;
  std::size_t len() const { return family == AF_INET ? 4 : 16; }
  int max_prefix() const { return family == AF_INET ? 32 : 128; }
  std::string str() const;   // "10.0.0.2"
  std::string cidr() const;  // "10.0.0.2/32"
  bool operator==(const Addr&) const = default;
};

// "10.1.2.3", "fd00::1", "10.0.0.0/8", "2001:db8::/32"; a bare address gets a full-length prefix.
std::optional<Addr> parse_addr(const std::string& text);
// True if a lies inside net (family, prefix bits).
bool contains(const Addr& net, const Addr& a);
// net's address with its index-th host: index 1 is the first address after the network one.
Addr host_in(const Addr& net, std::uint64_t index, int prefix);
// Number of host addresses in net usable for jails (capped), given the gateway takes index 1.
std::uint64_t host_count(const Addr& net);

}  // namespace netjail::detail
