// Read-only probes of a jail's network (see probe.hpp): libnl for links, addresses and routes;
// sockets opened inside the jail's netns for connections; libc's resolver helpers to build and
// read DNS messages.
#include "netjail/probe.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <poll.h>
#include <resolv.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <system_error>
#include <thread>

#include "common/fd.hpp"

namespace netjail {

using common::fail;
using common::Result;
using common::UniqueFd;

namespace {

struct SockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct CacheFree {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using SockPtr = std::unique_ptr<nl_sock, SockFree>;
using CachePtr = std::unique_ptr<nl_cache, CacheFree>;

Result<SockPtr> route_socket() {
  SockPtr sk{nl_socket_alloc()};
  if (!sk) return fail(ENOMEM, "netlink socket");
  if (int err = nl_connect(sk.get(), NETLINK_ROUTE); err < 0)
    return fail(0, "netlink connect: {}", nl_geterror(err));
  return sk;
}

Result<CachePtr> link_cache(nl_sock* sk) {
  nl_cache* c = nullptr;
  if (int err = rtnl_link_alloc_cache(sk, AF_UNSPEC, &c); err < 0)
    return fail(0, "list links: {}", nl_geterror(err));
  return CachePtr{c};
}

LinkInfo link_info(nl_cache* links, const std::string& name) {
  LinkInfo out;
  rtnl_link* l = rtnl_link_get_by_name(links, name.c_str());
  if (l == nullptr) return out;
  out.exists = true;
  unsigned flags = rtnl_link_get_flags(l);
  out.up = (flags & IFF_UP) != 0;
  out.carrier = rtnl_link_get_carrier(l) != 0;
  if (int master = rtnl_link_get_master(l); master > 0) {
    char buf[IFNAMSIZ + 1] = {};
    if (rtnl_link_i2name(links, master, buf, sizeof buf) != nullptr) out.master = buf;
  }
  rtnl_link_put(l);
  return out;
}

std::string addr_text(nl_addr* a, bool with_prefix) {
  if (a == nullptr) return "";
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(nl_addr_get_family(a), nl_addr_get_binary_addr(a), buf, sizeof buf) == nullptr)
    return "";
  std::string s = buf;
  if (with_prefix) s += "/" + std::to_string(nl_addr_get_prefixlen(a));
  return s;
}

// Runs fn on a thread that has joined the netns of netns_fd; sockets fn opens stay there.
template <class T>
Result<T> in_netns(int netns_fd, const std::function<Result<T>()>& fn) {
  Result<T> result = fail(EINTR, "probe thread did not run");
  try {
    std::thread t([&]() noexcept {
      if (::setns(netns_fd, CLONE_NEWNET) != 0) {
        result = fail(errno, "enter the jail's network namespace");
        return;
      }
      result = fn();
    });
    t.join();
  } catch (const std::system_error& e) {
    return fail(e.code().value(), "start probe thread");
  }
  return result;
}

// Parses "10.0.0.1" or "fd00::1" with port into a sockaddr.
bool to_sockaddr(const std::string& address, std::uint16_t port, sockaddr_storage& ss,
                 socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
    return true;
  }
  if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
    return true;
  }
  return false;
}

std::string sockaddr_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  return buf;
}

// One DNS question (class IN, type) from fd, which is connected to the resolver.
Result<DnsResult> ask(int fd, const std::string& name, int type, int timeout_ms) {
  DnsResult out;
  unsigned char query[NS_PACKETSZ];
  struct __res_state rs {};
  if (res_ninit(&rs) != 0) return fail(0, "dns: res_ninit failed");
  int qlen = res_nmkquery(&rs, QUERY, name.c_str(), ns_c_in, type, nullptr, 0, nullptr, query,
                          sizeof query);
  res_nclose(&rs);
  if (qlen < 0) return fail(EINVAL, "dns: cannot ask for '{}'", name);
  if (::send(fd, query, static_cast<size_t>(qlen), 0) != qlen) return fail(errno, "dns: send");
  unsigned char reply[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return out;  // no answer
    struct pollfd pfd = {fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    ssize_t len = ::recv(fd, reply, sizeof reply, 0);
    if (len < 0) {
      if (errno == ECONNREFUSED) return out;  // ICMP port unreachable: nobody serves DNS there
      continue;
    }
    if (len < static_cast<ssize_t>(HFIXEDSZ) || std::memcmp(reply, query, 2) != 0)
      continue;  // not an answer to our question
    out.answered = true;
    // The header, then (with libc's resolver helpers) past the questions to the answers.
    HEADER h;
    std::memcpy(&h, reply, sizeof h);
    out.rcode = h.rcode;
    const unsigned char* p = reply + HFIXEDSZ;
    const unsigned char* end = reply + len;
    for (unsigned q = ntohs(h.qdcount); q > 0; --q) {
      int n = dn_skipname(p, end);
      if (n < 0 || end - p < n + QFIXEDSZ) return out;
      p += n + QFIXEDSZ;
    }
    for (unsigned a = ntohs(h.ancount); a > 0; --a) {
      int n = dn_skipname(p, end);
      if (n < 0 || end - p < n + RRFIXEDSZ) return out;
      p += n;
      unsigned type, klass, rdlen;
      std::uint32_t ttl;
      NS_GET16(type, p);
      NS_GET16(klass, p);
      NS_GET32(ttl, p);
      NS_GET16(rdlen, p);
      (void)klass;
      (void)ttl;
      if (end - p < static_cast<std::ptrdiff_t>(rdlen)) return out;
      char buf[INET6_ADDRSTRLEN] = {};
      if (type == ns_t_a && rdlen == 4)
        inet_ntop(AF_INET, p, buf, sizeof buf);
      else if (type == ns_t_aaaa && rdlen == 16)
        inet_ntop(AF_INET6, p, buf, sizeof buf);
      if (buf[0] != '\0') out.addresses.emplace_back(buf);
      p += rdlen;
    }
    return out;
  }
}

}  // namespace

Result<LinkInfo> host_link(const std::string& name) {
  auto sk = TRY(route_socket());
  auto links = TRY(link_cache(sk.get()));
  return link_info(links.get(), name);
}

Result<JailNetState> jail_net_state(int netns_fd, const std::string& ifname) {
  return in_netns<JailNetState>(netns_fd, [&]() -> Result<JailNetState> {
    JailNetState out;
    auto sk = TRY(route_socket());
    auto links = TRY(link_cache(sk.get()));
    out.link = link_info(links.get(), ifname);
    out.loopback = link_info(links.get(), "lo");
    int ifindex = rtnl_link_name2i(links.get(), ifname.c_str());

    nl_cache* raw = nullptr;
    if (int err = rtnl_addr_alloc_cache(sk.get(), &raw); err < 0)
      return fail(0, "list addresses: {}", nl_geterror(err));
    CachePtr addrs{raw};
    for (nl_object* o = nl_cache_get_first(addrs.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto* a = reinterpret_cast<rtnl_addr*>(o);
      if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE)
        continue;
      out.addresses.push_back(addr_text(rtnl_addr_get_local(a), true));
    }

    raw = nullptr;
    if (int err = rtnl_route_alloc_cache(sk.get(), AF_UNSPEC, 0, &raw); err < 0)
      return fail(0, "list routes: {}", nl_geterror(err));
    CachePtr routes{raw};
    for (nl_object* o = nl_cache_get_first(routes.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto* r = reinterpret_cast<rtnl_route*>(o);
      nl_addr* dst = rtnl_route_get_dst(r);
      if (rtnl_route_get_table(r) != RT_TABLE_MAIN ||
          (dst != nullptr && nl_addr_get_prefixlen(dst) != 0))
        continue;
      if (rtnl_route_get_nnexthops(r) < 1) continue;
      std::string gw = addr_text(rtnl_route_nh_get_gateway(rtnl_route_nexthop_n(r, 0)), false);
      if (gw.empty()) continue;
      (rtnl_route_get_family(r) == AF_INET ? out.gateway4 : out.gateway6) = gw;
    }
    return out;
  });
}

Result<ConnectResult> connect_probe(int netns_fd, const std::string& address, std::uint16_t port,
                                    int timeout_ms, bool udp) {
  sockaddr_storage dst;
  socklen_t dst_len;
  if (!to_sockaddr(address, port, dst, dst_len))
    return fail(EINVAL, "'{}' is not an address", address);
  auto fd = TRY(in_netns<UniqueFd>(netns_fd, [&]() -> Result<UniqueFd> {
    UniqueFd s{::socket(dst.ss_family,
                        (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (!s) return fail(errno, "socket in the jail's network namespace");
    return s;
  }));
  ConnectResult out;
  auto start = std::chrono::steady_clock::now();
  int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&dst), dst_len);
  if (rc != 0 && errno == EINPROGRESS) {
    struct pollfd p = {fd.get(), POLLOUT, 0};
    int n;
    while ((n = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    if (n == 0) {
      out.err = ETIMEDOUT;
    } else {
      int so = 0;
      socklen_t len = sizeof so;
      (void)::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so, &len);
      out.err = so;
    }
  } else if (rc != 0) {
    out.err = errno;
  }
  out.ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  sockaddr_storage src{};
  socklen_t src_len = sizeof src;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&src), &src_len) == 0) {
    out.source = sockaddr_text(src);
    if (out.source == "0.0.0.0" || out.source == "::") out.source.clear();
  }
  return out;
}

Result<DnsResult> dns_probe(int netns_fd, const std::string& resolver, const std::string& name,
                            int timeout_ms) {
  sockaddr_storage dst;
  socklen_t dst_len;
  if (!to_sockaddr(resolver, 53, dst, dst_len))
    return fail(EINVAL, "'{}' is not an address", resolver);
  auto fd = TRY(in_netns<UniqueFd>(netns_fd, [&]() -> Result<UniqueFd> {
    UniqueFd s{::socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    if (!s) return fail(errno, "socket in the jail's network namespace");
    return s;
  }));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&dst), dst_len) != 0)
    return fail(errno, "dns: no route to resolver {}", resolver);
  auto a = TRY(ask(fd.get(), name, ns_t_a, timeout_ms));
  if (!a.answered || !a.addresses.empty()) return a;
  auto aaaa = TRY(ask(fd.get(), name, ns_t_aaaa, timeout_ms));
  if (aaaa.answered) return aaaa;
  return a;
}

}  // namespace netjail
