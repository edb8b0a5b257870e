// libFuzzer target for the policy loader: load_policy on fuzzed files, then the to_toml round trip.
//
// An input is one or more files separated by a line "---": the first is loaded as policy.toml,
// the others are written beside it as 1.toml, 2.toml, ... so that `include = ["1.toml"]` has
// something to find. Every file lives in a private directory made once, and is removed after each
// input so no input sees another's files. Includes that leave the directory (an absolute path,
// "..") are the loader's business: it reads only regular files of bounded size, so none can block
// or run forever (a FIFO, /dev/zero, /proc/kcore); see read_policy_text in policy/load.cpp.
//
// A spec that loads must print (to_toml) as a policy that loads again, to the same TOML: a failure
// there is a bug, and the target aborts so libFuzzer keeps the input.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "policy/spec.hpp"

namespace {

constexpr std::size_t kMaxFiles = 4;
constexpr std::string_view kSeparator = "\n---\n";

std::string g_dir;  // the private directory, made once

void write_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) {
    std::fprintf(stderr, "policy_fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

// Splits the input into at most kMaxFiles files; the last one keeps any further separators.
std::vector<std::string_view> split_files(std::string_view input) {
  std::vector<std::string_view> files;
  while (files.size() + 1 < kMaxFiles) {
    auto sep = input.find(kSeparator);
    if (sep == std::string_view::npos) break;
    files.push_back(input.substr(0, sep));
    input.remove_prefix(sep + kSeparator.size());
  }
  files.push_back(input);
  return files;
}

std::string file_name(std::size_t i) {
  return g_dir + "/" + (i == 0 ? std::string("policy.toml") : std::to_string(i) + ".toml");
}

[[noreturn]] void round_trip_bug(const char* what, const std::string& printed,
                                 const std::string& detail) {
  std::fprintf(stderr, "policy_fuzz: %s\n--- to_toml printed:\n%s\n--- detail:\n%s\n", what,
               printed.c_str(), detail.c_str());
  std::abort();
}

void check_round_trip(const policy::JailSpec& spec) {
  const std::string printed = policy::to_toml(spec);
  const std::string path = g_dir + "/effective.toml";
  write_file(path, printed);
  auto again = policy::load_policy(path);
  (void)std::remove(path.c_str());  // a stale copy would only be overwritten next time
  if (!again) round_trip_bug("to_toml output does not load", printed, again.error().message());
  const std::string reprinted = policy::to_toml(*again);
  if (reprinted != printed)
    round_trip_bug("to_toml output loads to another spec", printed, reprinted);
}

void remove_dir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);  // best effort at exit: it is under TMPDIR
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "stockade-fuzz-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("policy_fuzz: mkdtemp");
    std::abort();
  }
  g_dir = tmpl;
  std::atexit(remove_dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto files = split_files(input);
  for (std::size_t i = 0; i < files.size(); ++i) write_file(file_name(i), files[i]);
  auto spec = policy::load_policy(file_name(0));
  for (std::size_t i = 0; i < files.size(); ++i) (void)std::remove(file_name(i).c_str());
  if (spec) check_round_trip(*spec);
  return 0;
}
