// supervisor: runs one jail from start to reaping, on the host side.
//
//   prepare (plan, host uid lease) -> clone into new namespaces -> id maps -> registry entry
//   -> release the child -> forward signals, enforce the time limit -> reap -> clean up.
//
// Every kernel object the run creates (the child, the lease, the registry entry) has a guard,
// so every return path, errors included, leaves nothing behind.
#pragma once

#include <string>

#include "common/result.hpp"
#include "policy/spec.hpp"

namespace supervisor {

// How a jail ended. An Error from run() means the sandbox could not be set up (exit 125).
struct Outcome {
  int exit_code = 0;  // the workload's status, 128+N for signal N, 126/127 if it never ran
  std::string note;   // why, when it is not the workload's own doing ("" otherwise)
};

common::Result<Outcome> run(const policy::JailSpec& spec);

}  // namespace supervisor
