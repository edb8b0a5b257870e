// Link layer of netjail through libnl-route-3: the shared bridge, one veth pair per jail, bridge
// port flags, permanent neighbour entries, and the jail end's addresses and routes.
#pragma once

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "netjail/detail/types.hpp"

struct nl_sock;

namespace netjail::detail {

// Owner of a connected NETLINK_ROUTE socket. The socket works in the netns of the thread that
// opened it, for its whole life. Not thread-safe: one user at a time.
class RouteSocket {
 public:
  RouteSocket(RouteSocket&&) noexcept;
  RouteSocket& operator=(RouteSocket&&) noexcept;
  ~RouteSocket();

  nl_sock* get() const noexcept { return sk_.get(); }

  // What the kernel said about the last request it refused (errno and extended ack text);
  // libnl keeps only a coarse NLE_* code. Filled by an error callback on the socket.
  struct KernelError {
    int err = 0;      // positive errno, 0 if none recorded
    char msg[256]{};  // NLMSGERR_ATTR_MSG, "" if none (fixed size: filled inside a C callback)
  };
  KernelError& last_kernel_error() noexcept { return *kernel_error_; }

 private:
  struct SockFree {
    void operator()(nl_sock* sk) const noexcept;
  };
  RouteSocket(std::unique_ptr<nl_sock, SockFree> sk, std::unique_ptr<KernelError> ke) noexcept;
  friend common::Result<RouteSocket> open_route_socket();

  std::unique_ptr<nl_sock, SockFree> sk_;
  std::unique_ptr<KernelError> kernel_error_;  // heap: the callback keeps its address
};

common::Result<RouteSocket> open_route_socket();

// gw4 = 10.231.0.1/16, gw6 = fd5e:...::1/64: the gateway address AND the subnet prefix.
struct BridgeSpec {
  std::string name;
  Addr gw4;
  Addr gw6;
};

// The alias that marks a bridge as created by stockade (IFLA_IFALIAS).
inline constexpr const char* kBridgeAlias = "stockade";

// Creates the bridge if missing (alias "stockade"), adds its addresses (v6 with IFA_F_NODAD) if
// missing, brings it up and sets the per-interface sysctls of that bridge only:
// ipv4 forwarding=1, send_redirects=0; ipv6 force_forwarding=1 (skipped if the kernel lacks it),
// accept_ra=0. Refuses a link of that name that is not a bridge carrying the alias.
// Idempotent. Returns the bridge's ifindex.
common::Result<int> ensure_bridge(RouteSocket&, const BridgeSpec&);

// Deletes the bridge only if it carries the alias. A missing bridge is success.
common::Result<void> delete_bridge(RouteSocket&, const std::string& name);

// Creates a veth pair (NLM_F_CREATE|NLM_F_EXCL): `host_name` in the socket's netns, and the peer
// `peer_name` with MAC `peer_mac` created directly inside the netns of `netns_fd`. Returns the
// host end's ifindex. Both ends stay down.
common::Result<int> add_veth(RouteSocket&, const std::string& host_name,
                             const std::string& peer_name, const Mac& peer_mac, int netns_fd);

// Turns IPv6 off on a link of the socket's netns (before it is up): a bridge port needs no
// addresses, and each IPv6 link adds a link-local address and routes to the netns's table, which
// the kernel walks whole whenever any link goes down (every jail's teardown, under the rtnl lock).
common::Result<void> disable_ipv6(const std::string& name);

// Enslaves the host end to the bridge, sets the port flags isolated=on and learning=off, then sets
// the host end up.
common::Result<void> attach_port(RouteSocket&, int host_ifindex, int bridge_ifindex);
// Sets a bridge port's state to disabled: the bridge drops what arrives on it before any
// netfilter hook sees it (so before the bridge table counts it).
common::Result<void> close_port(RouteSocket&, int host_ifindex);

// Static FDB entry (like `bridge fdb add MAC dev PORT master static`): with learning off, frames
// from the host to a jail MAC are otherwise flooded to every port, so every jail would see them.
// Replaces an existing entry.
common::Result<void> add_port_fdb(RouteSocket&, int host_ifindex, const Mac& mac);

// Permanent neighbour entry on the bridge: ip -> mac, replacing an existing one. del_neigh treats
// a missing entry as success.
common::Result<void> add_neigh(RouteSocket&, int bridge_ifindex, const Addr& ip, const Mac& mac);
common::Result<void> del_neigh(RouteSocket&, int bridge_ifindex, const Addr& ip);

struct JailSide {
  std::string ifname = "eth0";
  Addr addr4;
  Addr gw4;
  Addr addr6;
  Addr gw6;
  Addr ll6;  // the link-local address (unset: the kernel makes one, with DAD)
  bool has6 = true;
  bool lo_up = true;  // also set `lo` up (a fresh netns has it down)
};

// Inside the netns of netns_fd, through a route socket opened there (the calling thread enters
// the netns for the socket() and bind() alone and is back before anything else runs): addr4 as
// /32 and addr6 as /128 (IFA_F_NODAD) on ifname, ll6 as its only link-local address (/64,
// IFA_F_NODAD; the kernel makes none), ifname up, on-link host routes to gw4 (/32, scope link)
// and gw6 (/128), and default routes via gw4 and gw6.
common::Result<void> configure_jail_side(int netns_fd, const JailSide&);

// Deletes a link by name; a missing link is success.
common::Result<void> delete_link(RouteSocket&, const std::string& name);

// Names of the links in the socket's netns that start with prefix (for garbage collection).
common::Result<std::vector<std::string>> links_with_prefix(RouteSocket&, const std::string& prefix);

// ifindex of a link by name, or an error with errno ENODEV.
common::Result<int> link_index(RouteSocket&, const std::string& name);

}  // namespace netjail::detail
