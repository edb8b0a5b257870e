// Read-only probes of a running jail's network, for `stockade diagnose`: link state on the host
// and inside the jail's netns, addresses, default routes, and connections made from inside the
// jail's netns (so they take the jail's own path: its veth, the bridge's pinning, its mark, its
// egress chain). Nothing here changes the host or the jail.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace netjail {

struct LinkInfo {
  bool exists = false;
  bool up = false;       // IFF_UP
  bool carrier = false;  // IFF_LOWER_UP
  std::string master;    // the bridge it is a port of, "" if none
};

// A link of the host's (the caller's) network namespace.
common::Result<LinkInfo> host_link(const std::string& name);

struct JailNetState {
  LinkInfo link;                       // the jail's veth end (eth0)
  LinkInfo loopback;                   // lo
  std::vector<std::string> addresses;  // on the veth end, "10.231.0.5/32", global scope only
  std::optional<std::string> gateway4, gateway6;  // of the default routes in the main table
};

// Inside the netns of netns_fd, from a short-lived thread (the caller's netns is untouched).
common::Result<JailNetState> jail_net_state(int netns_fd, const std::string& ifname = "eth0");

struct ConnectResult {
  int err = 0;         // 0: connected; else ECONNREFUSED, ETIMEDOUT, ENETUNREACH, ...
  std::string source;  // the source address the jail's routing chose ("" if none)
  double ms = 0;       // how long it took
};

// A TCP connection from inside the netns to address:port, given up after timeout_ms. A UDP
// "connection" (no packet sent) only asks the jail's routing for a route: udp = true.
common::Result<ConnectResult> connect_probe(int netns_fd, const std::string& address,
                                            std::uint16_t port, int timeout_ms, bool udp = false);

struct DnsResult {
  bool answered = false;               // a reply came back from the resolver
  int rcode = -1;                      // its RCODE (0 NOERROR, 3 NXDOMAIN, ...)
  std::vector<std::string> addresses;  // A and AAAA records in the answer
};

// Asks resolver (UDP, port 53) for name's A record (and then AAAA) from inside the netns.
common::Result<DnsResult> dns_probe(int netns_fd, const std::string& resolver,
                                    const std::string& name, int timeout_ms);

}  // namespace netjail
