// stockade run's own options, and which of them a command line needs built.
#pragma once

#include <CLI/CLI.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cli/nsjail_flags.hpp"
#include "policy/spec.hpp"

namespace cli {

// What run's options are parsed into. --bind, --ro-bind and --tmpfs each keep their own values;
// finish_run_options() interleaves them into flags.mounts as they stood on the command line.
// nsjail's flags land in `nsjail`, folded into `flags` by apply_nsjail_flags.
struct RunOptions {
  policy::RunFlags flags;
  NsjailFlags nsjail;
  std::string policy_file;
  bool quiet = false;
  std::vector<std::string> bind, ro_bind, tmpfs;
  CLI::Option *bind_opt = nullptr, *ro_bind_opt = nullptr, *tmpfs_opt = nullptr;
};

// Whether a command-line word asks CLI11 for help: --help, or a short-option word with an h in
// it (-h, -qh). What is built lazily must all be built then, so that help lists it.
bool asks_for_help(std::string_view word);

// Adds run's options, nsjail's among them, to `run`: all of them if `all`, else those `words`
// (the command line after "run", up to "--") name. Building all ~70 costs a launch ~0.3 ms (cold
// code, and CLI11 checks each new name against every earlier one), and `stockade run -q -- CMD`
// needs one. CLI11 only ever matches a word to an option that word names, so it parses the same
// either way. Help (--help, or an 'h' in a short-option word) and any word that looks like an
// option none of run's options claims (a misspelling, a value like -1, a main option) build
// them all, so that help lists everything and CLI11's errors are what they would be with all.
void add_run_options(CLI::App* run, RunOptions& o, std::span<const char* const> words, bool all);

// After parsing: the mounts in command-line order.
void finish_run_options(const CLI::App* run, RunOptions& o);

}  // namespace cli
