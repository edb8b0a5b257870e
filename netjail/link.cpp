// libnl-route-3 adapter for netjail's link layer. Every libnl object has a unique_ptr owner;
// libnl's coarse NLE_* codes are turned back into errno, preferring what the kernel reported.
#include "netjail/detail/link.hpp"

#include <fcntl.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/inet6.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <system_error>
#include <utility>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/sys.hpp"

namespace netjail::detail {

using common::Error;
using common::fail;
using common::Result;
using common::UniqueFd;

namespace {

// ---- owners for libnl objects ----

struct LinkPut {
  void operator()(rtnl_link* p) const noexcept { rtnl_link_put(p); }
};
struct NlAddrPut {
  void operator()(nl_addr* p) const noexcept { nl_addr_put(p); }
};
struct RtAddrPut {
  void operator()(rtnl_addr* p) const noexcept { rtnl_addr_put(p); }
};
struct RoutePut {
  void operator()(rtnl_route* p) const noexcept { rtnl_route_put(p); }
};
struct NexthopFree {
  void operator()(rtnl_nexthop* p) const noexcept { rtnl_route_nh_free(p); }
};
struct NeighPut {
  void operator()(rtnl_neigh* p) const noexcept { rtnl_neigh_put(p); }
};
struct MsgFree {
  void operator()(nl_msg* p) const noexcept { nlmsg_free(p); }
};
struct CacheFree {
  void operator()(nl_cache* p) const noexcept { nl_cache_free(p); }
};

using LinkPtr = std::unique_ptr<rtnl_link, LinkPut>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlAddrPut>;
using RtAddrPtr = std::unique_ptr<rtnl_addr, RtAddrPut>;
using RoutePtr = std::unique_ptr<rtnl_route, RoutePut>;
using NexthopPtr = std::unique_ptr<rtnl_nexthop, NexthopFree>;
using NeighPtr = std::unique_ptr<rtnl_neigh, NeighPut>;
using MsgPtr = std::unique_ptr<nl_msg, MsgFree>;
using CachePtr = std::unique_ptr<nl_cache, CacheFree>;

// ---- errors ----

// libnl folds errno into NLE_* codes (nl_syserr2nlerr); this is the way back when the kernel's
// own errno was not captured (errors raised inside libnl itself).
int nlerr_to_errno(int nlerr) {
  switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_EXIST:
      return EEXIST;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
      return ENODEV;
    case NLE_PERM:
      return EPERM;
    case NLE_NOACCESS:
      return EACCES;
    case NLE_BUSY:
      return EBUSY;
    case NLE_INVAL:
      return EINVAL;
    case NLE_NOMEM:
      return ENOMEM;
    case NLE_RANGE:
      return ERANGE;
    case NLE_AGAIN:
      return EAGAIN;
    case NLE_INTR:
      return EINTR;
    case NLE_BAD_SOCK:
      return EBADF;
    case NLE_MSGSIZE:
      return EMSGSIZE;
    case NLE_OPNOTSUPP:
      return EOPNOTSUPP;
    case NLE_AF_NOSUPPORT:
      return EAFNOSUPPORT;
    case NLE_NOADDR:
      return EADDRNOTAVAIL;
    default:
      return EIO;
  }
}

// Error for a failed libnl call: the kernel's errno if the socket's error callback recorded one
// that matches this failure, else the mapped NLE code; the text names both layers.
template <class... Args>
std::unexpected<Error> fail_nl(RouteSocket& sk, int nlerr, fmt::format_string<Args...> f,
                               Args&&... args) {
  RouteSocket::KernelError& ke = sk.last_kernel_error();
  bool from_kernel = ke.err != 0 && nl_syserr2nlerr(ke.err) == (nlerr < 0 ? -nlerr : nlerr);
  int err = from_kernel ? ke.err : nlerr_to_errno(nlerr);
  std::string what = fmt::format(f, std::forward<Args>(args)...);
  what += fmt::format(" (libnl: {}", nl_geterror(nlerr));
  if (from_kernel && ke.msg[0] != '\0') what += fmt::format("; kernel: {}", ke.msg);
  what += ")";
  ke = {};
  return std::unexpected(Error{err, std::move(what)});
}

bool is_not_found(int nlerr) {
  int e = nlerr < 0 ? -nlerr : nlerr;
  return e == NLE_OBJ_NOTFOUND || e == NLE_NODEV;
}

bool is_exist(int nlerr) { return nlerr == -NLE_EXIST || nlerr == NLE_EXIST; }

// Records the kernel's errno and extended-ack text of an NLMSG_ERROR, then lets libnl carry on
// as without a callback (NL_STOP: it returns -nl_syserr2nlerr(error)). Runs inside libnl: no
// allocation, no exceptions.
int record_kernel_error(sockaddr_nl*, nlmsgerr* e, void* arg) {
  auto* ke = static_cast<RouteSocket::KernelError*>(arg);
  ke->err = -e->error;
  ke->msg[0] = '\0';
  // e is the payload of the NLMSG_ERROR message; the TLVs follow the (possibly capped) echo.
  const auto* hdr =
      reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(e) - NLMSG_HDRLEN);
  if ((hdr->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return NL_STOP;
  std::size_t off = sizeof(nlmsgerr);
  if ((hdr->nlmsg_flags & NLM_F_CAPPED) == 0) off += e->msg.nlmsg_len - NLMSG_HDRLEN;
  off = NLMSG_ALIGN(off);
  std::size_t total = hdr->nlmsg_len - NLMSG_HDRLEN;
  if (off >= total) return NL_STOP;
  auto* tlvs = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(e) + off);
  nlattr* text = nla_find(tlvs, static_cast<int>(total - off), NLMSGERR_ATTR_MSG);
  if (text != nullptr) nla_strlcpy(ke->msg, text, sizeof ke->msg);
  return NL_STOP;
}

// ---- small builders ----

Result<NlAddrPtr> nl_ip(const Addr& a, int prefix) {
  if (a.family != AF_INET && a.family != AF_INET6)
    return fail(EAFNOSUPPORT, "address family {} is not IPv4 or IPv6", a.family);
  NlAddrPtr p{nl_addr_build(a.family, a.b.data(), a.len())};
  if (!p) return fail(ENOMEM, "build address '{}'", a.str());
  nl_addr_set_prefixlen(p.get(), prefix);
  return p;
}

Result<NlAddrPtr> nl_mac(const Mac& m) {
  NlAddrPtr p{nl_addr_build(AF_LLC, m.b.data(), m.b.size())};
  if (!p) return fail(ENOMEM, "build MAC '{}'", m.str());
  return p;
}

Result<void> check_ifname(const std::string& name) {
  // The name also becomes a path component under /proc/sys/net.
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('/') != std::string::npos ||
      name == "." || name == "..")
    return fail(EINVAL, "invalid interface name '{}'", name);
  return {};
}

// The link called name, or nullptr if there is none.
Result<LinkPtr> find_link(RouteSocket& sk, const std::string& name) {
  rtnl_link* raw = nullptr;
  int err = rtnl_link_get_kernel(sk.get(), 0, name.c_str(), &raw);
  LinkPtr link{raw};
  if (err < 0 && !is_not_found(err)) return fail_nl(sk, err, "look up link '{}'", name);
  return link;
}

// RTM_NEWLINK on an existing ifindex: `changes` carries only what should change.
Result<void> change_link(RouteSocket& sk, int ifindex, rtnl_link* changes, const char* what) {
  LinkPtr orig{rtnl_link_alloc()};
  if (!orig) return fail(ENOMEM, "{} (ifindex {})", what, ifindex);
  rtnl_link_set_ifindex(orig.get(), ifindex);
  int err = rtnl_link_change(sk.get(), orig.get(), changes, 0);
  if (err < 0) return fail_nl(sk, err, "{} (ifindex {})", what, ifindex);
  return {};
}

Result<void> set_up(RouteSocket& sk, int ifindex) {
  LinkPtr up{rtnl_link_alloc()};
  if (!up) return fail(ENOMEM, "set link up (ifindex {})", ifindex);
  rtnl_link_set_flags(up.get(), IFF_UP);
  return change_link(sk, ifindex, up.get(), "set link up");
}

Result<void> delete_ifindex(RouteSocket& sk, int ifindex, const std::string& name) {
  LinkPtr link{rtnl_link_alloc()};
  if (!link) return fail(ENOMEM, "delete link '{}'", name);
  rtnl_link_set_ifindex(link.get(), ifindex);
  int err = rtnl_link_delete(sk.get(), link.get());
  if (err < 0 && !is_not_found(err)) return fail_nl(sk, err, "delete link '{}'", name);
  return {};
}

// Adds ip/prefix on ifindex. An address that is already there counts as added: the kernel
// refuses a duplicate with EEXIST unless NLM_F_REPLACE, and we want to keep the present one.
Result<void> add_address(RouteSocket& sk, int ifindex, const Addr& ip, int prefix, bool nodad) {
  RtAddrPtr a{rtnl_addr_alloc()};
  if (!a) return fail(ENOMEM, "add address '{}/{}'", ip.str(), prefix);
  NlAddrPtr local = TRY(nl_ip(ip, prefix));
  rtnl_addr_set_ifindex(a.get(), ifindex);
  rtnl_addr_set_family(a.get(), ip.family);
  int err = rtnl_addr_set_local(a.get(), local.get());
  if (err < 0) return fail_nl(sk, err, "add address '{}/{}'", ip.str(), prefix);
  rtnl_addr_set_prefixlen(a.get(), prefix);
  // Without NODAD a v6 address stays tentative for about a second and cannot be used as source.
  if (nodad) rtnl_addr_set_flags(a.get(), IFA_F_NODAD);
  err = rtnl_addr_add(sk.get(), a.get(), 0);
  if (err < 0 && !is_exist(err))
    return fail_nl(sk, err, "add address '{}/{}' (ifindex {})", ip.str(), prefix, ifindex);
  return {};
}

// Route to dst/prefix through ifindex, via gateway gw if given, else on-link (scope link).
Result<void> add_route(RouteSocket& sk, int ifindex, const Addr& dst, int prefix, const Addr* gw) {
  std::string text = prefix == 0 ? fmt::format("default via {}", gw ? gw->str() : "?")
                                 : fmt::format("{}/{}", dst.str(), prefix);
  RoutePtr r{rtnl_route_alloc()};
  NexthopPtr nh{rtnl_route_nh_alloc()};
  if (!r || !nh) return fail(ENOMEM, "add route '{}'", text);
  NlAddrPtr d = TRY(nl_ip(dst, prefix));
  rtnl_route_set_family(r.get(), dst.family);
  int err = rtnl_route_set_dst(r.get(), d.get());
  if (err < 0) return fail_nl(sk, err, "add route '{}'", text);
  rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(r.get(), gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  rtnl_route_nh_set_ifindex(nh.get(), ifindex);
  if (gw) {
    NlAddrPtr g = TRY(nl_ip(*gw, gw->max_prefix()));
    rtnl_route_nh_set_gateway(nh.get(), g.get());  // takes its own reference
  }
  rtnl_route_add_nexthop(r.get(), nh.release());  // the route owns the nexthop from here
  // REPLACE: configuring the same jail twice yields the same table.
  err = rtnl_route_add(sk.get(), r.get(), NLM_F_REPLACE);
  if (err < 0) return fail_nl(sk, err, "add route '{}' (ifindex {})", text, ifindex);
  return {};
}

// Writes one per-interface sysctl. Per-netns, through /proc of the opener's netns.
Result<void> write_sysctl(const std::string& path, const char* value, bool may_be_absent) {
  int fd = -1;
  do fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ENOENT && may_be_absent) return {};
    return fail(errno, "open '{}'", path);
  }
  UniqueFd owner{fd};
  std::size_t len = std::strlen(value);
  ssize_t n = -1;
  do n = ::write(fd, value, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) return fail(errno, "write '{}' to '{}'", value, path);
  if (static_cast<std::size_t>(n) != len) return fail(EIO, "short write to '{}'", path);
  return {};
}

Result<void> set_bridge_sysctls(const std::string& br) {
  TRY(write_sysctl(fmt::format("/proc/sys/net/ipv4/conf/{}/forwarding", br), "1", false));
  TRY(write_sysctl(fmt::format("/proc/sys/net/ipv4/conf/{}/send_redirects", br), "0", false));
  // force_forwarding (6.17+) makes this interface forward v6 without the global switch.
  TRY(write_sysctl(fmt::format("/proc/sys/net/ipv6/conf/{}/force_forwarding", br), "1", true));
  TRY(write_sysctl(fmt::format("/proc/sys/net/ipv6/conf/{}/accept_ra", br), "0", false));
  return {};
}

bool is_stockade_bridge(rtnl_link* link) {
  const char* type = rtnl_link_get_type(link);
  const char* alias = rtnl_link_get_ifalias(link);
  return type != nullptr && std::strcmp(type, "bridge") == 0 && alias != nullptr &&
         std::strcmp(alias, kBridgeAlias) == 0;
}

// A fixed MAC for the bridge, derived from its name (FNV-1a), locally administered and unicast.
// Without an explicit address the bridge takes the lowest MAC among its ports, so it would change
// whenever a jail port comes or goes, and every jail's cached gateway MAC would go stale.
Mac bridge_mac(const std::string& name) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char ch : name) h = (h ^ static_cast<std::uint8_t>(ch)) * 0x100000001b3ull;
  Mac m;
  m.b[0] = 0x02;
  for (int i = 1; i < 6; ++i) m.b[i] = static_cast<std::uint8_t>(h >> (8 * i));
  return m;
}

// Creates the bridge and marks it with our alias. Returns false if a link of that name appeared
// meanwhile (then the caller checks whose it is).
Result<bool> create_bridge(RouteSocket& sk, const std::string& name) {
  LinkPtr br{rtnl_link_bridge_alloc()};
  if (!br) return fail(ENOMEM, "create bridge '{}'", name);
  rtnl_link_set_name(br.get(), name.c_str());
  NlAddrPtr mac = TRY(nl_mac(bridge_mac(name)));
  rtnl_link_set_addr(br.get(), mac.get());  // at creation: marks the address as user-set
  int err = rtnl_link_add(sk.get(), br.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (is_exist(err)) return false;
  if (err < 0) return fail_nl(sk, err, "create bridge '{}'", name);
  // The kernel ignores IFLA_IFALIAS in the creating RTM_NEWLINK (measured on 6.18), so the alias
  // needs a second message. EXCL succeeded, so the bridge is ours to mark, or to remove again.
  Result<int> ifindex = link_index(sk, name);
  Result<void> marked = ifindex ? Result<void>{} : std::unexpected(ifindex.error());
  if (ifindex) {
    LinkPtr alias{rtnl_link_alloc()};
    if (!alias) return fail(ENOMEM, "create bridge '{}'", name);
    rtnl_link_set_ifalias(alias.get(), kBridgeAlias);
    marked = change_link(sk, *ifindex, alias.get(), "set alias");
  }
  if (!marked) {
    (void)delete_link(sk, name);  // best effort: an unmarked bridge would block the name
    return std::unexpected(common::context(std::move(marked).error(), "create bridge '{}'", name));
  }
  return true;
}

// One RTM_SETLINK (family AF_BRIDGE) with u8 port attributes nested in IFLA_PROTINFO. libnl 3.7
// has no setter for IFLA_BRPORT_ISOLATED, so the message is put together with libnl's builders.
Result<void> set_port_u8(RouteSocket& sk, int port_ifindex,
                         std::initializer_list<std::pair<int, std::uint8_t>> attrs,
                         const char* what) {
  MsgPtr msg{nlmsg_alloc_simple(RTM_SETLINK, 0)};
  if (!msg) return fail(ENOMEM, "{} (ifindex {})", what, port_ifindex);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_BRIDGE;
  ifi.ifi_index = port_ifindex;
  if (nlmsg_append(msg.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0)
    return fail(EMSGSIZE, "{} (ifindex {})", what, port_ifindex);
  // nla_nest_start adds NLA_F_NESTED; the bridge reads a non-nested IFLA_PROTINFO as a bare
  // STP port state instead.
  nlattr* protinfo = nla_nest_start(msg.get(), IFLA_PROTINFO);
  if (protinfo == nullptr) return fail(EMSGSIZE, "{} (ifindex {})", what, port_ifindex);
  for (auto [type, value] : attrs)
    if (nla_put_u8(msg.get(), type, value) < 0)
      return fail(EMSGSIZE, "{} (ifindex {})", what, port_ifindex);
  nla_nest_end(msg.get(), protinfo);
  int err = nl_send_sync(sk.get(), msg.release());  // frees the message
  if (err < 0) return fail_nl(sk, err, "{} (ifindex {})", what, port_ifindex);
  return {};
}

Result<void> configure_in_netns(RouteSocket& sk, const JailSide& js) {
  int ifindex = TRY(link_index(sk, js.ifname));
  TRY(add_address(sk, ifindex, js.addr4, 32, false));
  if (js.has6) TRY(add_address(sk, ifindex, js.addr6, 128, true));
  if (js.has6 && js.ll6.family == AF_INET6) {
    // The link-local address the port is pinned to, valid at once. The one the kernel would
    // make is tentative for a second (duplicate address detection), and until then the jail's
    // multicast listener reports leave from `::`, which the bridge table counts as spoofed.
    LinkPtr mode{rtnl_link_alloc()};
    if (!mode) return fail(ENOMEM, "'{}': IPv6 address generation", js.ifname);
    int err = rtnl_link_inet6_set_addr_gen_mode(mode.get(), IN6_ADDR_GEN_MODE_NONE);
    if (err < 0) return fail_nl(sk, err, "'{}': IPv6 address generation", js.ifname);
    TRY(change_link(sk, ifindex, mode.get(), "no IPv6 address generation"));
    TRY(add_address(sk, ifindex, js.ll6, 64, true));
  }
  TRY_CTX(set_up(sk, ifindex), "'{}'", js.ifname);
  if (js.lo_up) {
    int lo = TRY(link_index(sk, "lo"));
    TRY_CTX(set_up(sk, lo), "'lo'");
  }
  // v6 refuses routes through a device that is down, so the routes come after IFF_UP.
  Addr any4;
  any4.family = AF_INET;
  TRY(add_route(sk, ifindex, js.gw4, 32, nullptr));
  TRY(add_route(sk, ifindex, any4, 0, &js.gw4));
  if (js.has6) {
    Addr any6;
    any6.family = AF_INET6;
    TRY(add_route(sk, ifindex, js.gw6, 128, nullptr));
    TRY(add_route(sk, ifindex, any6, 0, &js.gw6));
  }
  return {};
}

}  // namespace

// ---- RouteSocket ----

void RouteSocket::SockFree::operator()(nl_sock* sk) const noexcept { nl_socket_free(sk); }

RouteSocket::RouteSocket(std::unique_ptr<nl_sock, SockFree> sk,
                         std::unique_ptr<KernelError> ke) noexcept
    : sk_(std::move(sk)), kernel_error_(std::move(ke)) {}
RouteSocket::RouteSocket(RouteSocket&&) noexcept = default;
RouteSocket& RouteSocket::operator=(RouteSocket&&) noexcept = default;
RouteSocket::~RouteSocket() = default;

Result<RouteSocket> open_route_socket() {
  std::unique_ptr<nl_sock, RouteSocket::SockFree> sk{nl_socket_alloc()};
  auto ke = std::make_unique<RouteSocket::KernelError>();
  if (!sk) return fail(ENOMEM, "allocate netlink socket");
  int err = nl_connect(sk.get(), NETLINK_ROUTE);
  if (err < 0) return fail(nlerr_to_errno(err), "connect NETLINK_ROUTE ({})", nl_geterror(err));
  // Extended acks carry the kernel's reason ("Nexthop device is not up"); capped acks keep the
  // echo short. Both are optional: without them errors just say less.
  int on = 1;
  (void)::setsockopt(nl_socket_get_fd(sk.get()), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
  (void)::setsockopt(nl_socket_get_fd(sk.get()), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
  err = nl_socket_modify_err_cb(sk.get(), NL_CB_CUSTOM, record_kernel_error, ke.get());
  if (err < 0) return fail(nlerr_to_errno(err), "set netlink error callback");
  return RouteSocket{std::move(sk), std::move(ke)};
}

// ---- bridge ----

Result<int> ensure_bridge(RouteSocket& sk, const BridgeSpec& spec) {
  const std::string& name = spec.name;
  TRY_CTX(check_ifname(name), "ensure bridge");
  if (spec.gw4.family != AF_INET || spec.gw6.family != AF_INET6)
    return fail(EINVAL, "ensure bridge '{}': gw4 must be IPv4 and gw6 IPv6", name);
  LinkPtr br = TRY(find_link(sk, name));
  if (!br) {
    (void)TRY(create_bridge(sk, name));  // false: someone else created it; checked below
    br = TRY(find_link(sk, name));
    if (!br) return fail(ENODEV, "bridge '{}' vanished right after creation", name);
  }
  if (!is_stockade_bridge(br.get()))
    return fail(EEXIST, "bridge '{}' exists and was not created by stockade; choose another name",
                name);
  int ifindex = rtnl_link_get_ifindex(br.get());
  // Sysctls first: accept_ra=0 must hold before the link is up.
  TRY_CTX(set_bridge_sysctls(name), "ensure bridge '{}'", name);
  TRY_CTX(add_address(sk, ifindex, spec.gw4, spec.gw4.prefix, false), "ensure bridge '{}'", name);
  TRY_CTX(add_address(sk, ifindex, spec.gw6, spec.gw6.prefix, true), "ensure bridge '{}'", name);
  TRY_CTX(set_up(sk, ifindex), "ensure bridge '{}'", name);
  return ifindex;
}

Result<void> delete_bridge(RouteSocket& sk, const std::string& name) {
  LinkPtr br = TRY(find_link(sk, name));
  if (!br) return {};
  if (!is_stockade_bridge(br.get()))
    return fail(EPERM, "delete bridge '{}': it was not created by stockade; leaving it", name);
  // By ifindex, so a rename after the check cannot redirect the delete to another link.
  return delete_ifindex(sk, rtnl_link_get_ifindex(br.get()), name);
}

// ---- veth and port ----

Result<int> add_veth(RouteSocket& sk, const std::string& host_name, const std::string& peer_name,
                     const Mac& peer_mac, int netns_fd) {
  TRY_CTX(check_ifname(host_name), "add veth");
  TRY_CTX(check_ifname(peer_name), "add veth '{}'", host_name);
  LinkPtr link{rtnl_link_veth_alloc()};
  if (!link) return fail(ENOMEM, "add veth '{}'", host_name);
  LinkPtr peer{rtnl_link_veth_get_peer(link.get())};  // takes a reference of its own
  if (!peer) return fail(ENOMEM, "add veth '{}'", host_name);
  NlAddrPtr mac = TRY(nl_mac(peer_mac));
  rtnl_link_set_name(link.get(), host_name.c_str());
  rtnl_link_set_name(peer.get(), peer_name.c_str());
  rtnl_link_set_addr(peer.get(), mac.get());
  // IFLA_NET_NS_FD in the peer's attributes: the kernel creates the peer inside the jail netns,
  // so it never exists in ours (no window, no name clash with our own eth0).
  rtnl_link_set_ns_fd(peer.get(), netns_fd);
  int err = rtnl_link_add(sk.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0)
    return fail_nl(sk, err, "add veth '{}' with peer '{}' in netns fd {}", host_name, peer_name,
                   netns_fd);
  // The ack carries no ifindex; look it up. If that fails, do not leave the pair behind.
  Result<int> index = link_index(sk, host_name);
  if (!index) {
    (void)delete_link(sk, host_name);  // best effort; the lookup error is the one to report
    return std::unexpected(common::context(std::move(index).error(), "add veth '{}'", host_name));
  }
  return *index;
}

Result<void> disable_ipv6(const std::string& name) {
  TRY_CTX(check_ifname(name), "disable IPv6");
  // may_be_absent: a kernel without IPv6 has nothing to disable.
  return write_sysctl(fmt::format("/proc/sys/net/ipv6/conf/{}/disable_ipv6", name), "1", true);
}

Result<void> attach_port(RouteSocket& sk, int host_ifindex, int bridge_ifindex) {
  LinkPtr enslave{rtnl_link_alloc()};
  if (!enslave) return fail(ENOMEM, "attach port (ifindex {})", host_ifindex);
  rtnl_link_set_master(enslave.get(), bridge_ifindex);
  TRY_CTX(change_link(sk, host_ifindex, enslave.get(), "enslave"), "attach port to bridge {}",
          bridge_ifindex);
  // Flags before IFF_UP: the port must not forward between jails for a single frame.
  TRY_CTX(set_port_u8(sk, host_ifindex, {{IFLA_BRPORT_ISOLATED, 1}, {IFLA_BRPORT_LEARNING, 0}},
                      "set bridge port isolated on, learning off"),
          "attach port to bridge {}", bridge_ifindex);
  TRY_CTX(set_up(sk, host_ifindex), "attach port to bridge {}", bridge_ifindex);
  return {};
}

Result<void> close_port(RouteSocket& sk, int host_ifindex) {
  return set_port_u8(sk, host_ifindex, {{IFLA_BRPORT_STATE, BR_STATE_DISABLED}},
                     "set bridge port state disabled");
}

Result<void> add_port_fdb(RouteSocket& sk, int host_ifindex, const Mac& mac) {
  NeighPtr n{rtnl_neigh_alloc()};
  if (!n) return fail(ENOMEM, "add fdb entry '{}'", mac.str());
  NlAddrPtr ll = TRY(nl_mac(mac));
  rtnl_neigh_set_family(n.get(), AF_BRIDGE);
  rtnl_neigh_set_ifindex(n.get(), host_ifindex);
  rtnl_neigh_set_lladdr(n.get(), ll.get());
  // NUD_NOARP is iproute2's "static" (forward to this port); NUD_PERMANENT would mean "local",
  // i.e. deliver to the bridge itself.
  rtnl_neigh_set_state(n.get(), NUD_NOARP);
  rtnl_neigh_set_flags(n.get(), NTF_MASTER);
  int err = rtnl_neigh_add(sk.get(), n.get(), NLM_F_CREATE | NLM_F_REPLACE);
  if (err < 0)
    return fail_nl(sk, err, "add fdb entry '{}' on port (ifindex {})", mac.str(), host_ifindex);
  return {};
}

// ---- neighbours ----

Result<void> add_neigh(RouteSocket& sk, int bridge_ifindex, const Addr& ip, const Mac& mac) {
  NeighPtr n{rtnl_neigh_alloc()};
  if (!n) return fail(ENOMEM, "add neighbour '{}'", ip.str());
  NlAddrPtr dst = TRY(nl_ip(ip, ip.max_prefix()));
  NlAddrPtr ll = TRY(nl_mac(mac));
  rtnl_neigh_set_ifindex(n.get(), bridge_ifindex);
  int err = rtnl_neigh_set_dst(n.get(), dst.get());
  if (err < 0) return fail_nl(sk, err, "add neighbour '{}'", ip.str());
  rtnl_neigh_set_lladdr(n.get(), ll.get());
  rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
  err = rtnl_neigh_add(sk.get(), n.get(), NLM_F_CREATE | NLM_F_REPLACE);
  if (err < 0)
    return fail_nl(sk, err, "add neighbour '{}' lladdr '{}' (ifindex {})", ip.str(), mac.str(),
                   bridge_ifindex);
  return {};
}

Result<void> del_neigh(RouteSocket& sk, int bridge_ifindex, const Addr& ip) {
  NeighPtr n{rtnl_neigh_alloc()};
  if (!n) return fail(ENOMEM, "delete neighbour '{}'", ip.str());
  NlAddrPtr dst = TRY(nl_ip(ip, ip.max_prefix()));
  rtnl_neigh_set_ifindex(n.get(), bridge_ifindex);
  int err = rtnl_neigh_set_dst(n.get(), dst.get());
  if (err < 0) return fail_nl(sk, err, "delete neighbour '{}'", ip.str());
  err = rtnl_neigh_delete(sk.get(), n.get(), 0);
  // ENOENT (no entry) and ENODEV (bridge gone) both leave no entry behind.
  if (err < 0 && !is_not_found(err))
    return fail_nl(sk, err, "delete neighbour '{}' (ifindex {})", ip.str(), bridge_ifindex);
  return {};
}

// ---- jail side ----

Result<void> configure_jail_side(int netns_fd, const JailSide& js) {
  // A netlink socket belongs to the netns it was made in, wherever it is used from. So this
  // thread enters the jail's netns for the socket alone and comes straight back. (A helper thread
  // did this before: its start and join cost 0.1-0.6 ms on the test VM, and a second thread
  // makes every later page write of the supervisor's a TLB shootdown; bench/README.md.)
  UniqueFd home{sys::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)};
  if (!home) return fail(errno, "configure jail side: open /proc/thread-self/ns/net");
  if (::setns(netns_fd, CLONE_NEWNET) != 0)
    return fail(errno, "configure jail side: setns(net) on fd {}", netns_fd);
  Result<RouteSocket> sk = open_route_socket();
  if (::setns(home.get(), CLONE_NEWNET) != 0) {
    // Stranded in the jail's netns, where the host's teardown would act on the jail's objects
    // instead: better to die now and leave the rest to `stockade gc`.
    common::log::error("cannot return to the host's network namespace: {}", std::strerror(errno));
    std::abort();
  }
  if (!sk) return std::unexpected(common::context(std::move(sk).error(), "configure jail side"));
  Result<void> result = configure_in_netns(*sk, js);
  if (!result)
    return std::unexpected(
        common::context(std::move(result).error(), "configure jail side '{}'", js.ifname));
  return result;
}

// ---- lookups and deletion ----

Result<void> delete_link(RouteSocket& sk, const std::string& name) {
  LinkPtr link{rtnl_link_alloc()};
  if (!link) return fail(ENOMEM, "delete link '{}'", name);
  rtnl_link_set_name(link.get(), name.c_str());
  int err = rtnl_link_delete(sk.get(), link.get());
  if (err < 0 && !is_not_found(err)) return fail_nl(sk, err, "delete link '{}'", name);
  return {};
}

Result<std::vector<std::string>> links_with_prefix(RouteSocket& sk, const std::string& prefix) {
  nl_cache* raw = nullptr;
  int err = rtnl_link_alloc_cache(sk.get(), AF_UNSPEC, &raw);
  CachePtr cache{raw};
  if (err < 0) return fail_nl(sk, err, "list links");
  std::vector<std::string> names;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    const char* name = rtnl_link_get_name(reinterpret_cast<rtnl_link*>(o));
    if (name != nullptr && std::string_view(name).starts_with(prefix)) names.emplace_back(name);
  }
  return names;
}

Result<int> link_index(RouteSocket& sk, const std::string& name) {
  LinkPtr link = TRY(find_link(sk, name));
  if (!link) return fail(ENODEV, "find link '{}'", name);
  return rtnl_link_get_ifindex(link.get());
}

}  // namespace netjail::detail
