// supervisor: runs one jail from start to reaping, on the host side.
//
//   prepare (plan, host uid lease) -> clone into new namespaces -> id maps -> registry entry
//   -> release the child -> forward signals, enforce the time limit -> reap -> clean up.
//
// Every kernel object the run creates (the child, the lease, the registry entry) has a guard,
// so every return path, errors included, leaves nothing behind.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "policy/spec.hpp"

namespace supervisor {

// --- stockade gc: reconcile after crashes ----------------------------------------------------
//
// Every object a jail leaves on the host carries its jail id. gc first lists the objects (each
// reconciler below), then learns which jails are alive (a locked lease names its jail; a rootless
// jail's supervisor pid), then removes the objects of the dead ones. Listing before the liveness
// check matters: a jail starting meanwhile takes its lease before it makes anything, so an object
// seen in the listing belongs to a jail whose lease the check will see.

struct GcOptions {
  bool dry_run = false;
  std::string registry_dir;   // "" = common::registry::default_dir()
  std::string lease_dir;      // "" = /run/stockade/leases
  std::string cgroup_parent;  // as --cgroup-parent of the runs
};

// One leftover: what it is, whose, and how to remove it.
struct GcObject {
  std::string kind;     // "registry", "lease", "cgroup", ... (netjail adds "veth", "nft")
  std::string jail_id;  // "" when not known (a lease a crash left before naming its jail)
  std::string name;     // path or object name, for people
  std::function<common::Result<void>()> remove;
};

// A reconciler lists the objects of one kind, for the jails it can find.
using GcReconciler = std::function<std::vector<GcObject>(const GcOptions&)>;

struct GcResult {
  std::vector<GcObject> removed;  // (or, with dry_run, what would be)
  std::vector<std::pair<GcObject, common::Error>> failed;
  std::vector<std::string> live;  // ids of running jails, left alone
};

// The built-in reconcilers (registry entries, cgroups); netjail plugs its own in through extra.
common::Result<GcResult> gc(const GcOptions& options, const std::vector<GcReconciler>& extra = {});

// How a jail ended. An Error from run() means the sandbox could not be set up (exit 125).
struct Outcome {
  int exit_code = 0;  // the workload's status, 128+N for signal N, 126/127 if it never ran
  std::string note;   // why, when it is not the workload's own doing ("" otherwise)
};

common::Result<Outcome> run(const policy::JailSpec& spec);

// stockade exec: runs argv inside the running jail id, started by the jail's pid 1 the way the
// workload was (same namespaces, ids, capabilities, rlimits, cgroup, seccomp filter and audit
// id), with the caller's stdin/stdout/stderr. TERM/INT/HUP/QUIT are passed on to the command;
// if the caller dies, the command is killed. Blocks until the command ends. An Error means it
// could not be asked (no such jail, not running, refused).
common::Result<Outcome> exec(const std::string& id, const std::vector<std::string>& argv);

// Test hook: the points where STOCKADE_TEST_CRASH_AT=NAME makes run() SIGKILL its own process,
// across setup and teardown, in the order run() passes them.
const std::vector<std::string>& crash_points();

}  // namespace supervisor
