// The skeleton: a read-only /etc and /dev prepared once per host and bound into every jail.
//
// Copying the host's small /etc files and creating /dev's entries in each jail costs ~30
// filesystem operations per launch, and every mount adds to namespace teardown too. Instead
// the supervisor keeps /run/stockade/skel/<version>/{etc,dev}, where the version is a digest of
// the host files it was made from; a changed /etc gives a new version, built once, atomically.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"

namespace supervisor::detail {

// /etc entries a typical program needs; everything else of the host's /etc stays out.
const std::vector<const char*>& skeleton_etc_entries();
// The device nodes bound into every jail's /dev.
const std::vector<const char*>& skeleton_dev_nodes();

// The version of a skeleton made from this /etc (a 16-digit hex digest of the entries' metadata):
// it changes when one of them, or a file in ld.so.conf.d, is replaced, edited, added or removed.
std::string skeleton_version(const std::string& etc);

// Returns the directory holding etc/ and dev/ for the host as it is now, building it if needed.
common::Result<std::string> ensure_skeleton(const std::string& base);

std::string default_skeleton_base();

}  // namespace supervisor::detail
