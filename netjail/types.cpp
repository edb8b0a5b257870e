#include "netjail/detail/types.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>

namespace netjail::detail {

std::string Mac::str() const {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4],
                     b[5]);
}

std::string Addr::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, b.data(), buf, sizeof buf);
  return buf;
}

std::string Addr::cidr() const { return fmt::format("{}/{}", str(), prefix); }

std::optional<Addr> parse_addr(const std::string& text) {
  Addr a;
  auto slash = text.find('/');
  std::string host = text.substr(0, slash);
  a.family = host.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (inet_pton(a.family, host.c_str(), a.b.data()) != 1) return std::nullopt;
  a.prefix = a.max_prefix();
  if (slash != std::string::npos) {
    std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), ::isdigit))
      return std::nullopt;
    a.prefix = std::stoi(p);
    if (a.prefix > a.max_prefix()) return std::nullopt;
  }
  return a;
}

bool contains(const Addr& net, const Addr& a) {
  if (net.family != a.family) return false;
  for (int bit = 0; bit < net.prefix; ++bit) {
    std::uint8_t m = static_cast<std::uint8_t>(0x80 >> (bit % 8));
    if ((net.b[bit / 8] & m) != (a.b[bit / 8] & m)) return false;
  }
  return true;
}

Addr host_in(const Addr& net, std::uint64_t index, int prefix) {
  Addr a = net;
  a.prefix = prefix;
  // Add index to the address, big-endian, from the last byte.
  std::uint64_t carry = index;
  for (int i = static_cast<int>(net.len()) - 1; i >= 0 && carry; --i) {
    std::uint64_t v = a.b[i] + (carry & 0xff);
    a.b[i] = static_cast<std::uint8_t>(v);
    carry = (carry >> 8) + (v >> 8);
  }
  return a;
}

std::uint64_t host_count(const Addr& net) {
  int bits = net.max_prefix() - net.prefix;
  if (bits >= 20) return 1u << 20;  // a million jails per bridge is plenty
  std::uint64_t n = 1ull << bits;
  // Leave out the network address, the gateway and (v4) the broadcast address.
  return n > 3 ? n - (net.family == AF_INET ? 3 : 2) : 0;
}

}  // namespace netjail::detail
