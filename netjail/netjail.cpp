#include "netjail/netjail.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/fd.hpp"
#include "common/registry.hpp"
#include "common/sys.hpp"
#include "netjail/detail/link.hpp"
#include "netjail/detail/nft.hpp"
#include "netjail/detail/types.hpp"

namespace netjail {
namespace {

using common::fail;
using common::Result;
using common::UniqueFd;
using namespace detail;

struct Net {
  Addr sub4, sub6, gw4, gw6;
};

Result<Net> bridge_net(const policy::NetworkPolicy& n) {
  auto s4 = parse_addr(n.subnet4), s6 = parse_addr(n.subnet6);
  if (!s4 || s4->family != AF_INET) return fail(EINVAL, "subnet4 '{}'", n.subnet4);
  if (!s6 || s6->family != AF_INET6) return fail(EINVAL, "subnet6 '{}'", n.subnet6);
  Net net{*s4, *s6, host_in(*s4, 1, s4->prefix), host_in(*s6, 1, s6->prefix)};
  return net;
}

bool still_linked(int fd, const std::string& path) {
  struct stat held, linked;
  return ::fstat(fd, &held) == 0 && ::stat(path.c_str(), &linked) == 0 &&
         held.st_ino == linked.st_ino;
}

// flock on path; a file gc unlinked while we waited is no lock at all, so try again.
Result<UniqueFd> lock_file(const std::string& path, int op) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    UniqueFd fd{sys::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)};
    if (!fd) return fail(errno, "open '{}'", path);
    while (::flock(fd.get(), op) != 0)
      if (errno != EINTR) return fail(errno, "lock '{}'", path);
    if (still_linked(fd.get(), path)) return fd;
  }
  return fail(EAGAIN, "lock '{}'", path);
}

// An address lease: an flock on DIR/INDEX.lease held for the jail's lifetime. The file holds
// what gc needs to undo the jail if its supervisor dies.
struct Lease {
  UniqueFd fd;
  std::string path;
  std::uint64_t index = 0;
  Lease() = default;
  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&& o) noexcept {
    if (this != &o) {
      release();
      fd = std::move(o.fd);
      path = std::move(o.path);
      index = o.index;
    }
    return *this;
  }
  ~Lease() { release(); }
  void release() noexcept {
    // Unlinked while still locked: a racing leaser sees the inode is gone and retries.
    if (fd) (void)::unlink(path.c_str());
    fd.reset();
  }
};

Result<Lease> lease_index(const std::string& dir, std::uint64_t count) {
  std::uint32_t start = 0;
  (void)sys::getrandom(&start, sizeof start);  // any start will do if the pool fails
  std::uint64_t crashed = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t index = (start + i) % count;
    std::string path = fmt::format("{}/{}.lease", dir, index);
    UniqueFd fd{sys::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)};
    if (!fd) return fail(errno, "open '{}'", path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) continue;
      return fail(errno, "lock '{}'", path);
    }
    if (!still_linked(fd.get(), path)) {
      --i;  // released and unlinked under us: the same index is free again
      continue;
    }
    // A lease is unlinked when it is released, and written before anything of its jail is
    // built: one that is there, unlocked and written is a crashed jail's, whose nftables
    // elements (its address among them, in peer_hosts) are still loaded. Left for gc: a new
    // jail on that address would inherit them.
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return fail(errno, "stat '{}'", path);
    if (st.st_size > 0) {
      ++crashed;
      continue;
    }
    Lease l;
    l.fd = std::move(fd);
    l.path = path;
    l.index = index;
    return l;
  }
  if (crashed > 0)
    return fail(EAGAIN,
                "all {} addresses are in use, {} of them by jails whose supervisor died; run "
                "'stockade gc' to free those",
                count, crashed);
  return fail(EAGAIN, "all {} addresses are in use; give the bridge a larger subnet4", count);
}

Mac mac_for(std::uint64_t index) {
  // Locally administered, unicast; unique on the bridge because the index is.
  return Mac{{0x02, 0x5e, static_cast<std::uint8_t>(index >> 24),
              static_cast<std::uint8_t>(index >> 16), static_cast<std::uint8_t>(index >> 8),
              static_cast<std::uint8_t>(index)}};
}

// The link-local address the kernel derives from the MAC (EUI-64).
Addr link_local(const Mac& m) {
  Addr a;
  a.family = AF_INET6;
  a.prefix = 128;
  a.b = {0xfe,   0x80,   0,
         0,      0,      0,
         0,      0,      static_cast<std::uint8_t>(m.b[0] ^ 0x02),
         m.b[1], m.b[2], 0xff,
         0xfe,   m.b[3], m.b[4],
         m.b[5]};
  return a;
}

int ip_proto(const std::string& proto, int family) {
  if (proto == "tcp") return IPPROTO_TCP;
  if (proto == "udp") return IPPROTO_UDP;
  if (proto == "icmp") return family == AF_INET ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6};
  return 0;
}

Result<std::vector<Addr>> resolve(const std::string& name) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &res);
  if (rc != 0)
    return fail(0, "resolve '{}' (hosts are resolved when the jail starts): {}", name,
                gai_strerror(rc));
  std::vector<Addr> out;
  for (auto* p = res; p; p = p->ai_next) {
    Addr a;
    a.family = p->ai_family;
    if (p->ai_family == AF_INET) {
      std::memcpy(a.b.data(), &reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr, 4);
      a.prefix = 32;
    } else if (p->ai_family == AF_INET6) {
      std::memcpy(a.b.data(), &reinterpret_cast<sockaddr_in6*>(p->ai_addr)->sin6_addr, 16);
      a.prefix = 128;
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  ::freeaddrinfo(res);
  return out;
}

std::string lease_text(const JailRules& j, const std::string& bridge) {
  nlohmann::json pub = nlohmann::json::array();
  for (const auto& p : j.publish) pub.push_back({p.proto, p.host_port, p.jail_port});
  nlohmann::json peers = nlohmann::json::array();  // they decide which objects the jail has
  for (const auto& n : j.peers) peers.push_back(n.cidr());
  nlohmann::json doc = {{"id", j.id},
                        {"bridge", bridge},
                        {"port", j.port},
                        {"mark", j.mark},
                        {"mac", j.mac.str()},
                        {"ipv4", j.addr4.str()},
                        {"ipv6", j.addr6.str()},
                        {"ll6", j.ll6.str()},
                        {"publish", pub},
                        {"peers", peers},
                        {"flat", j.flat},  // its policy is set elements, found by their comments
                        {"supervisor", ::getpid()}};
  return doc.dump() + "\n";
}

std::optional<std::pair<JailRules, std::string>> parse_lease(const std::string& text) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  try {
    JailRules j;
    j.id = doc.at("id").get<std::string>();
    j.port = doc.at("port").get<std::string>();
    j.mark = doc.at("mark").get<std::uint32_t>();
    std::string mac = doc.at("mac").get<std::string>();
    unsigned m[6];
    if (std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) !=
        6)
      return std::nullopt;
    for (int i = 0; i < 6; ++i) j.mac.b[i] = static_cast<std::uint8_t>(m[i]);
    auto a4 = parse_addr(doc.at("ipv4").get<std::string>());
    auto a6 = parse_addr(doc.at("ipv6").get<std::string>());
    auto l6 = parse_addr(doc.at("ll6").get<std::string>());
    if (!a4 || !a6 || !l6) return std::nullopt;
    j.addr4 = *a4;
    j.addr6 = *a6;
    j.ll6 = *l6;
    for (const auto& p : doc.at("publish"))
      j.publish.push_back(
          {p.at(0).get<int>(), p.at(1).get<std::uint16_t>(), p.at(2).get<std::uint16_t>()});
    j.policy_known = false;                 // the rules are not in the lease
    j.mark_element = doc.contains("flat");  // not in the leases of a stockade before layout 4
    j.flat = doc.value("flat", false);
    j.peers_known = doc.contains("peers");  // not in the leases of an older stockade
    if (j.peers_known)
      for (const auto& p : doc.at("peers")) {
        auto net = parse_addr(p.get<std::string>());
        if (!net) return std::nullopt;
        j.peers.push_back(*net);
      }
    return std::pair{j, doc.at("bridge").get<std::string>()};
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

Result<void> write_all_at(int fd, const std::string& text) {
  if (::ftruncate(fd, 0) != 0) return fail(errno, "truncate lease");
  if (::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    return fail(errno, "write lease");
  return {};
}

Result<std::string> read_fd(int fd) {
  std::string out;
  char buf[4096];
  for (off_t off = 0;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(errno, "read lease");
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
    off += n;
  }
}

// The bridge and both tables: created once, checked on every start. The caller holds the
// bridge's creation lock.
Result<int> ensure_bridge_and_tables(const std::string& dir, const policy::NetworkPolicy& pol,
                                     const Net& net, RouteSocket& rs, NftSocket& nft) {
  std::string subnets = fmt::format("{} {}\n", pol.subnet4, pol.subnet6);
  std::string path = dir + "/subnets";
  UniqueFd fd{sys::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)};
  if (!fd) return fail(errno, "open '{}'", path);
  std::string have = TRY(read_fd(fd.get()));
  if (have.empty())
    TRY(write_all_at(fd.get(), subnets));
  else if (have != subnets)
    return fail(0,
                "bridge '{}' serves {} but this jail asks for {} {}; use another bridge name or "
                "the same subnets",
                pol.bridge, have.substr(0, have.size() - 1), pol.subnet4, pol.subnet6);
  // A bridge set up before (the marker file says so) is taken as it is: ensuring its addresses
  // and sysctls takes a few netlink round trips on every start.
  std::string marker = dir + "/registered";
  int index = 0;
  if (::access(marker.c_str(), F_OK) == 0)
    if (auto i = link_index(rs, pol.bridge)) index = *i;
  if (index == 0) index = TRY(ensure_bridge(rs, {pol.bridge, net.gw4, net.gw6}));
  // A failed (refused) nftables batch costs 10-20 ms, so the bridge's element is added once,
  // remembered by the marker file, which gc removes with the bridge.
  std::string comment;
  if (!TRY(base_exists(nft, &comment))) {
    TRY(ensure_base(nft));
    (void)::unlink(marker.c_str());  // fresh tables: the bridge is not in them yet
  } else {
    TRY(upgrade_layout(nft, comment));
  }
  if (::access(marker.c_str(), F_OK) != 0) {
    TRY(add_bridge(nft, pol.bridge));
    UniqueFd m{sys::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)};
    if (!m) return fail(errno, "create '{}'", marker);
  }
  return index;
}

Result<void> make_dirs(const std::string& dir) {
  std::string parent = dir.substr(0, dir.rfind('/'));
  TRY(common::registry::ensure_dir(parent.substr(0, parent.rfind('/'))));
  TRY(common::registry::ensure_dir(parent));
  TRY(common::registry::ensure_dir(dir));
  return {};
}

}  // namespace

struct Jail::Impl {
  policy::NetworkPolicy pol;
  Net net;
  std::string dir;
  UniqueFd users;  // shared lock: the bridge is in use
  Lease lease;
  std::optional<RouteSocket> rs;
  std::optional<NftSocket> nft;
  int bridge_index = 0;
  int port_index = 0;
  JailRules rules;
  Files files;
  std::vector<std::string> resolved;
  bool attached = false;

  ~Impl() {
    if (!attached || !nft || !rs) return;
    // The port is closed first: what the jail's kernel still sends until the kernel takes its
    // netns (and the veth) down is dropped by the bridge, not counted against the pins as
    // spoofed. Removing the pins then closes it for good.
    if (port_index > 0) (void)close_port(*rs, port_index);  // best effort
    (void)del_jail(*nft, rules);                            // best effort: gc finishes the job
    (void)del_neigh(*rs, bridge_index, rules.addr4);        // likewise
    (void)del_neigh(*rs, bridge_index, rules.addr6);        // likewise
    close_detached(std::move(*nft));                        // closing waits for the kernel to free
    nft.reset();
  }
};

Jail::Jail(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Jail::Jail(Jail&&) noexcept = default;
Jail::~Jail() = default;
const Files& Jail::files() const { return impl_->files; }
std::string Jail::bridge() const { return impl_->pol.bridge; }
std::string Jail::veth() const { return impl_->rules.port; }
std::string Jail::ipv4() const { return impl_->rules.addr4.str(); }
std::string Jail::ipv6() const { return impl_->rules.addr6.str(); }
std::uint32_t Jail::mark() const { return impl_->rules.mark; }
std::vector<std::string> Jail::resolved() const { return impl_->resolved; }

std::string default_state_dir() { return "/run/stockade/net"; }

Result<Jail> reserve(const policy::JailSpec& spec, const std::string& id, std::uint32_t mark,
                     const std::string& state_dir) {
  // Names first: a name that does not resolve leaves nothing built on the host.
  std::vector<std::pair<std::string, std::vector<Addr>>> resolved;
  for (const auto& name : spec.network.hosts) resolved.emplace_back(name, TRY(resolve(name)));
  std::string hosts_lines;
  auto impl = std::make_unique<Jail::Impl>();
  Jail::Impl& d = *impl;
  d.pol = spec.network;
  d.net = TRY(bridge_net(d.pol));
  d.dir = state_dir + "/" + d.pol.bridge;
  TRY_CTX(make_dirs(d.dir), "network state");
  auto users = lock_file(d.dir + "/users", LOCK_SH);
  if (!users && users.error().err == ENOENT) {  // gc removed the idle bridge's directory
    TRY_CTX(make_dirs(d.dir), "network state");
    users = lock_file(d.dir + "/users", LOCK_SH);
  }
  d.users = TRY(std::move(users));
  d.rs.emplace(TRY(open_route_socket()));
  d.nft.emplace(TRY(open_nft_socket()));
  {
    UniqueFd create = TRY(lock_file(d.dir + "/lock", LOCK_EX));
    d.bridge_index = TRY_CTX(ensure_bridge_and_tables(d.dir, d.pol, d.net, *d.rs, *d.nft),
                             "bridge '{}'", d.pol.bridge);
  }
  std::uint64_t count = std::min(host_count(d.net.sub4), host_count(d.net.sub6));
  d.lease = TRY_CTX(lease_index(d.dir, count), "lease an address on bridge '{}'", d.pol.bridge);

  JailRules& j = d.rules;
  j.id = id;
  j.port = kPortPrefix + id;
  j.mark = mark;
  j.mac = mac_for(d.lease.index);
  j.addr4 = host_in(d.net.sub4, d.lease.index + 2, 32);
  j.addr6 = host_in(d.net.sub6, d.lease.index + 2, 128);
  j.ll6 = link_local(j.mac);
  for (const auto& ip : d.pol.dns) {
    Addr a = *parse_addr(ip);
    for (int proto : {IPPROTO_UDP, IPPROTO_TCP}) j.allow.push_back({a, proto, 53, 53, "dns " + ip});
  }
  j.dns_rules = j.allow.size();
  for (auto& [name, addrs] : resolved) {
    for (const Addr& a : addrs) {
      j.allow.push_back({a, 0, 0, 65535, "host " + name});
      hosts_lines += fmt::format("{}\t{}\n", a.str(), name);
      d.resolved.push_back(fmt::format("{} {}", name, a.str()));
    }
  }
  for (std::size_t i = 0; i < d.pol.egress.size(); ++i) {
    const auto& e = d.pol.egress[i];
    Addr net = *parse_addr(e.cidr);
    j.allow.push_back({net, ip_proto(e.proto, net.family), e.port_first, e.port_last,
                       fmt::format("egress {}: {} {}", i + 1, e.cidr, e.proto)});
    j.peers.push_back(net);
  }
  for (const auto& p : d.pol.publish)
    j.publish.push_back({p.proto == "udp" ? IPPROTO_UDP : IPPROTO_TCP, p.host_port, p.jail_port});
  // Rules that are all exact keys need no chain of their own: adding a chain makes the kernel
  // validate every jail chain again, adding set elements does not.
  j.flat = flat_policy(j);
  TRY(write_all_at(d.lease.fd.get(), lease_text(j, d.pol.bridge)));

  d.files.hosts = fmt::format(
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{}\n{}\t{}\n{}",
      j.addr4.str(), spec.hostname, j.addr6.str(), spec.hostname, hosts_lines);
  if (d.pol.dns.empty()) {
    d.files.resolv_conf = "# stockade: this jail's policy allows no resolver (network.dns)\n";
  } else {
    d.files.resolv_conf = "# stockade: the resolvers this jail's policy allows\n";
    for (const auto& ip : d.pol.dns) d.files.resolv_conf += "nameserver " + ip + "\n";
  }
  return Jail(std::move(impl));
}

Result<void> Jail::attach(int netns_fd) {
  Impl& d = *impl_;
  const JailRules& j = d.rules;
  int port = TRY_CTX(add_veth(*d.rs, j.port, "eth0", j.mac, netns_fd), "veth '{}'", j.port);
  d.port_index = port;
  // The port stays closed (no pins, not in the bridge) until every rule is in place.
  d.attached = true;
  TRY_CTX(add_jail(*d.nft, j), "nftables rules of jail {}", j.id);
  TRY_CTX(add_neigh(*d.rs, d.bridge_index, j.addr4, j.mac), "neighbour {}", j.addr4.str());
  TRY_CTX(add_neigh(*d.rs, d.bridge_index, j.addr6, j.mac), "neighbour {}", j.addr6.str());
  // No link-local address and routes of its own for the port: the host's IPv6 table would
  // otherwise grow by three routes a jail, and each jail's teardown walks all of it.
  TRY_CTX(disable_ipv6(j.port), "bridge port '{}'", j.port);
  TRY_CTX(attach_port(*d.rs, port, d.bridge_index), "bridge port '{}'", j.port);
  // Learning is off on jail ports: without a static entry the host's frames to this jail
  // would be flooded to every port.
  TRY_CTX(add_port_fdb(*d.rs, port, j.mac), "bridge port '{}'", j.port);
  JailSide side;
  side.lo_up = false;  // the child brings lo up itself
  side.addr4 = j.addr4;
  side.gw4 = d.net.gw4;
  side.gw4.prefix = 32;
  side.addr6 = j.addr6;
  side.gw6 = d.net.gw6;
  side.gw6.prefix = 128;
  side.ll6 = j.ll6;
  TRY_CTX(configure_jail_side(netns_fd, side), "addresses and routes inside the jail");
  return {};
}

Result<std::vector<Counter>> counters(const std::string& id) {
  NftSocket nft = TRY(open_nft_socket());
  std::vector<Counter> out;
  for (auto& c : TRY(jail_counters(nft, id))) out.push_back({c.comment, c.packets, c.bytes});
  return out;
}

namespace {

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') out.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Undoes one dead jail's network, from its lease file (which the caller holds locked).
Result<void> undo(const JailRules& j, const std::string& bridge) {
  RouteSocket rs = TRY(open_route_socket());
  NftSocket nft = TRY(open_nft_socket());
  TRY_CTX(del_jail(nft, j), "nftables objects of jail {}", j.id);  // missing ones are skipped
  if (auto br = link_index(rs, bridge)) {
    TRY(del_neigh(rs, *br, j.addr4));
    TRY(del_neigh(rs, *br, j.addr6));
  }
  TRY(delete_link(rs, j.port));  // usually gone with the jail's netns already
  return {};
}

}  // namespace

std::vector<Leftover> leftovers(const std::string& state_dir) {
  std::vector<Leftover> out;
  for (const auto& bridge : dir_entries(state_dir)) {
    std::string dir = state_dir + "/" + bridge;
    for (const auto& name : dir_entries(dir)) {
      if (!name.ends_with(".lease")) continue;
      std::string path = dir + "/" + name;
      auto fd = std::make_shared<UniqueFd>(
          sys::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
      if (!*fd || ::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) continue;  // held: a live jail
      if (!still_linked(fd->get(), path)) continue;
      auto text = read_fd(fd->get());
      auto parsed = text ? parse_lease(*text) : std::nullopt;
      // Unlinked while still locked, as a lease is released.
      auto drop_lease = [fd, path]() -> Result<void> {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail(errno, "unlink '{}'", path);
        return {};
      };
      if (!parsed) {
        out.push_back({"", "lease", path, drop_lease});
        continue;
      }
      auto [j, br] = *parsed;
      out.push_back({j.id, "network",
                     fmt::format("{} on {}: nftables objects, neighbours {} {}, veth {}, lease {}",
                                 j.id, br, j.addr4.str(), j.addr6.str(), j.port, path),
                     [j, br, drop_lease]() -> Result<void> {
                       TRY(undo(j, br));
                       return drop_lease();
                     }});
    }
  }
  return out;
}

Result<std::vector<std::string>> remove_idle_bridges(const BridgeGcOptions& opts) {
  std::vector<std::string> out;
  RouteSocket rs = TRY(open_route_socket());
  NftSocket nft = TRY(open_nft_socket());
  for (const auto& bridge : dir_entries(opts.state_dir)) {
    if (!opts.only_bridge.empty() && bridge != opts.only_bridge) continue;
    std::string dir = opts.state_dir + "/" + bridge;
    // A bridge no jail holds, and none is starting on right now.
    auto create = lock_file(dir + "/lock", LOCK_EX | LOCK_NB);
    if (!create) continue;
    auto users = lock_file(dir + "/users", LOCK_EX | LOCK_NB);
    if (!users) continue;
    bool leases = false;
    for (const auto& name : dir_entries(dir)) leases = leases || name.ends_with(".lease");
    if (leases) continue;  // a dead jail's: gc removes those first
    out.push_back(fmt::format("bridge {}", bridge));
    if (opts.dry_run) continue;
    TRY(delete_bridge(rs, bridge));
    TRY(del_bridge(nft, bridge));
    for (const auto& name : dir_entries(dir)) (void)::unlink((dir + "/" + name).c_str());
    (void)::rmdir(dir.c_str());  // a jail that opened the lock file meanwhile recreates it
  }
  // No bridge left means no jail: each holds its bridge's state directory from before it touches
  // the tables until after it has left them. Any jail's objects still there lost their lease (a
  // lease file removed by hand): they go with the tables.
  if (!opts.dry_run && dir_entries(opts.state_dir).empty() && TRY(base_exists(nft))) {
    auto ids = TRY(jail_ids(nft));
    TRY(delete_base(nft));
    out.push_back(ids.empty() ? std::string("nftables tables inet stockade, bridge stockade_l2")
                              : fmt::format("nftables tables inet stockade, bridge stockade_l2 "
                                            "(with the objects of {} orphaned jail{})",
                                            ids.size(), ids.size() == 1 ? "" : "s"));
  }
  return out;
}

}  // namespace netjail
