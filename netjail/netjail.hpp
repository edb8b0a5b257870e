// netjail: a bridged jail's network, enforced on the host side of its veth.
//
// A jail is root in its own network namespace and may change its addresses, MAC and routes, so
// nothing inside it is trusted: identity is the bridge port, pinned to the MAC and addresses the
// host chose, and every rule lives in stockade's nftables tables (see docs/netjail.md).
//
//   reserve()  before clone: lease addresses, make sure the bridge and the tables exist, resolve
//              the policy's host names, render /etc/hosts and /etc/resolv.conf for the jail.
//   attach()   after clone, before the jail runs: veth with its peer created inside the jail's
//              netns, one nftables batch with every object of the jail, permanent neighbour
//              entries, the port joined to the bridge (isolated), addresses and routes inside.
//   ~Jail()    removes the jail's nftables objects and neighbour entries and releases the lease;
//              the veth goes with the jail's netns (an explicit delete costs ~20 ms).
//   gc()       does the same for jails whose supervisor died, found through their leases.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "policy/spec.hpp"

namespace netjail {

// Where leases and bridge locks live: /run/stockade/net.
std::string default_state_dir();

struct Files {
  std::string hosts;        // for the jail's /etc/hosts
  std::string resolv_conf;  // for the jail's /etc/resolv.conf
};

class Jail {
 public:
  struct Impl;
  explicit Jail(std::unique_ptr<Impl> impl);
  Jail(Jail&&) noexcept;
  Jail& operator=(Jail&&) = delete;
  ~Jail();

  const Files& files() const;
  // Builds the jail's side of the network; netns_fd is the jail's /proc/PID/ns/net.
  common::Result<void> attach(int netns_fd);

  std::string bridge() const;
  std::string veth() const;  // host end
  std::string ipv4() const;
  std::string ipv6() const;
  std::uint32_t mark() const;
  // What the policy's host names resolved to, for the operator ("mirror.example.org 192.0.2.7").
  std::vector<std::string> resolved() const;

 private:
  std::unique_ptr<Impl> impl_;
};

// id: the jail's id (12 hex digits); mark: its packet mark, unique among running jails (the
// supervisor uses the jail's leased host uid).
common::Result<Jail> reserve(const policy::JailSpec& spec, const std::string& id,
                             std::uint32_t mark,
                             const std::string& state_dir = default_state_dir());

struct Counter {
  std::string rule;  // the rule's comment: "egress 2", "dns", "denied"
  std::uint64_t packets = 0, bytes = 0;
};
// Per-rule counters of a running jail's egress chain (the last one counts what was denied).
common::Result<std::vector<Counter>> counters(const std::string& id);

// What a jail whose supervisor died left of its network, found through its address lease (no
// longer locked). remove() takes away its nftables objects, neighbour entries and veth (if still
// there) and then the lease. The object holds the lease's lock until it is destroyed, so no new
// jail can take that address in between.
struct Leftover {
  std::string jail_id;  // "" for a lease its jail never filled in (a crash right after taking it)
  std::string kind;     // "network", or "lease" for such an empty one
  std::string name;     // for people: what will be removed
  std::function<common::Result<void>()> remove;
};
std::vector<Leftover> leftovers(const std::string& state_dir = default_state_dir());

struct BridgeGcOptions {
  bool dry_run = false;
  std::string only_bridge;  // if set, this bridge only
  std::string state_dir = default_state_dir();
};
// Removes stockade bridges no jail uses (they are recreated on demand), and stockade's nftables
// tables once no bridge is left (orphaned jail chains with them). One line per thing removed (or
// that would be).
common::Result<std::vector<std::string>> remove_idle_bridges(const BridgeGcOptions& opts);

}  // namespace netjail
