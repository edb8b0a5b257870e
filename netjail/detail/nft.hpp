// nftables through libnftnl: stockade's two tables, and one batch per jail.
//
// Layout (docs/netjail.md has the full picture):
//   table bridge stockade_l2  identity and anti-spoofing at the jail's bridge port ("stk<id>"):
//                             MAC, IPv4+ARP and IPv6 sources pinned; the port's packets get the
//                             jail's mark; jail-to-jail frames dropped.
//   table inet stockade       forward/input dispatch by mark through a verdict map to the jail's
//                             own chain (O(1) per packet whatever the number of jails), NAT out,
//                             published ports (a DNAT map), jail-to-jail only if both allow it.
//                             A jail whose rules are all exact (single hosts, single ports) has
//                             no chain: its rules are elements of shared hash sets, keyed by its
//                             mark, looked up by one shared chain (flat_egress).
// Every per-jail object is named or keyed by the jail id, so gc can find what a crash left.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "netjail/detail/types.hpp"

struct mnl_socket;

namespace netjail::detail {

inline constexpr const char* kInetTable = "stockade";
inline constexpr const char* kBridgeTable = "stockade_l2";
inline constexpr const char* kPortPrefix = "stk";  // host end of every jail veth: stk<jail id>

// One allowed destination: a network, a protocol (0: any, else IPPROTO_*) and a port range.
struct Allow {
  Addr net;
  int proto = 0;
  std::uint16_t port_first = 0, port_last = 65535;
  std::string why;  // rule comment: where it came from ("egress 3", "dns", "host mirror")
};

struct Publish {
  int proto = 6;  // IPPROTO_TCP or IPPROTO_UDP
  std::uint16_t host_port = 0, jail_port = 0;
};

// Everything nftables needs to know about one jail.
struct JailRules {
  std::string id;    // 12 hex digits
  std::string port;  // host end of its veth
  std::uint32_t mark = 0;
  Mac mac;
  Addr addr4, addr6, ll6;  // its addresses (ll6: the link-local derived from mac)
  std::vector<Allow> allow;
  // allow[0, dns_rules) are the resolvers: DNS anywhere else is dropped before the other rules.
  std::size_t dns_rules = 0;
  // Jail-to-jail: another jail may open connections to this one only from these networks
  // (this jail's own egress networks) and only if its own policy allows the destination.
  std::vector<Addr> peers;
  std::vector<Publish> publish;
  bool log_denied = true;
  // False for a lease written before the peers were recorded in it: that jail has a peer chain.
  bool peers_known = true;
  // Its policy is elements of the flat_* sets, not a chain (flat_policy(allow), decided once
  // and recorded in the lease).
  bool flat = false;
  // False for a jail rebuilt from its lease, which does not hold the rules: its flat elements
  // are found by their comments.
  bool policy_known = true;
  // False for a lease of a stockade before layout 4: no element in the marks set.
  bool mark_element = true;
};

// True if every rule of j is an exact hash key: one host (/32, /128) and, for TCP and UDP, one
// port or all of them (a resolver's: one port). Such a jail needs no chain of its own (see
// flat_egress in nft.cpp).
bool flat_policy(const JailRules& j);

// A connected NETLINK_NETFILTER socket.
class NftSocket {
 public:
  NftSocket();
  NftSocket(NftSocket&&) noexcept;
  ~NftSocket();
  mnl_socket* get() const { return sock_.get(); }
  std::uint32_t next_seq() { return seq_++; }

 private:
  struct Close {
    void operator()(mnl_socket* s) const noexcept;
  };
  std::unique_ptr<mnl_socket, Close> sock_;
  std::uint32_t seq_ = 1;
  friend common::Result<NftSocket> open_nft_socket();
};

common::Result<NftSocket> open_nft_socket();
// Closes s without waiting. Closing a netfilter socket waits until the kernel has freed what any
// batch removed (nf_tables flushes its deferred destruction when a netlink socket is released:
// an RCU grace period, 8-15 ms on the test VM). A removal is complete once its batch is
// committed, so the close is left to a detached grandchild that holds the last reference to the
// socket and nothing else; if that cannot be forked, s is closed here.
void close_detached(NftSocket&& s) noexcept;

// True if stockade's inet table exists; its comment goes to *comment.
common::Result<bool> base_exists(NftSocket& s, std::string* comment = nullptr);
// Tables made by a stockade of an older layout (1: peer chains that jump to the egress map; 2: no
// DNS port set; 3: no flat sets) get what this one added and the current from_jails and input
// chains, in one batch; their jails keep running under it. comment is the table's (from
// base_exists).
common::Result<void> upgrade_layout(NftSocket& s, const std::string& comment);
// Creates both tables with their sets, maps and base chains in one batch, unless the inet table
// exists already. (A racing creator's batch is refused as a whole.)
common::Result<void> ensure_base(NftSocket& s);
// Adds or removes a bridge name in the set the base chains match on.
common::Result<void> add_bridge(NftSocket& s, const std::string& bridge);
common::Result<void> del_bridge(NftSocket& s, const std::string& bridge);
// Both tables, whatever is in them (gc, once no stockade bridge is left).
common::Result<void> delete_base(NftSocket& s);

// One batch adding every object of the jail; all or nothing.
common::Result<void> add_jail(NftSocket& s, const JailRules& j);
// One batch removing them; if some are missing (a half-built jail), each is removed on its own
// and the missing ones are skipped.
common::Result<void> del_jail(NftSocket& s, const JailRules& j);

// What add_jail would send, one line per message ("rule in jail_<id>", "element of egress (jump
// jail_<id>)", "element of flat_port4"), for tests that pin what a layout adds.
std::vector<std::string> add_jail_messages(const JailRules& j);

// Jails nftables holds objects for: chains named jail_<id>, elements of the marks set.
common::Result<std::vector<std::string>> jail_ids(NftSocket& s);

struct RuleCounter {
  std::string chain;
  std::string comment;
  std::uint64_t packets = 0, bytes = 0;
};
// The counters of the jail's egress policy, in rule order (the last one is the final drop): the
// rules of its chain, or for a flat jail its elements' counters (chain "flat_egress").
common::Result<std::vector<RuleCounter>> jail_counters(NftSocket& s, const std::string& id);

std::string egress_chain(const std::string& id);
std::string peer_chain(const std::string& id);

}  // namespace netjail::detail
