// Builds into CLI11 only the options a command line names (see cli/run_options.hpp): run's own
// options and nsjail's are declared through one Builder, twice per launch, first to probe.
#pragma once

#include <CLI/CLI.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cli::detail {

// Which options to build. While probing it answers no and notes which words the names claim;
// then it answers yes for the names the words name, or for all if a word was left unclaimed.
class OptionFilter {
 public:
  OptionFilter(std::span<const char* const> words, bool all);
  bool operator()(std::string_view names);  // CLI11 names, e.g. "-B,--bind"
  void end_probe();

 private:
  struct Word {
    std::string_view text;  // without its dashes and any "=value"
    bool is_long, claimed;
  };
  std::vector<Word> words_;
  bool all_, probing_ = true;
};

// Adds an option to `run` if the filter wants its names; returns it, or nullptr if not built.
// Names and help become strings only for an option that is built.
class Builder {
 public:
  Builder(CLI::App* run, OptionFilter& want) : run_(run), want_(want) {}

  // Options declared from here on are listed under this heading in --help.
  void group(std::string_view name) { group_ = name; }

  template <class T>
  CLI::Option* value(std::string_view names, T& v, std::string_view help,
                     const char* type = nullptr) {
    return want_(names) ? made(run_->add_option(std::string(names), v, std::string(help)), type)
                        : nullptr;
  }
  // Repeatable: one value each time it is given (-B /a -B /b), as nsjail's are, not every word
  // up to the next option, so `stockade run -B /src /bin/ls` runs /bin/ls.
  CLI::Option* list(std::string_view names, std::vector<std::string>& v, std::string_view help,
                    const char* type = nullptr) {
    return want_(names) ? made(run_->add_option(std::string(names), v, std::string(help))
                                   ->allow_extra_args(false),
                               type)
                        : nullptr;
  }
  template <class T, class F>
  CLI::Option* function(std::string_view names, F f, std::string_view help,
                        const char* type = nullptr) {
    return want_(names) ? made(run_->add_option_function<T>(std::string(names), std::move(f),
                                                            std::string(help)),
                               type)
                        : nullptr;
  }
  CLI::Option* flag(std::string_view names, bool& v, std::string_view help) {
    return want_(names) ? made(run_->add_flag(std::string(names), v, std::string(help)), nullptr)
                        : nullptr;
  }
  template <class F>
  CLI::Option* flag_callback(std::string_view names, F f, std::string_view help) {
    return want_(names)
               ? made(run_->add_flag_callback(std::string(names), std::move(f), std::string(help)),
                      nullptr)
               : nullptr;
  }

 private:
  CLI::Option* made(CLI::Option* o, const char* type) {
    if (type != nullptr) o->type_name(type);
    if (!group_.empty()) o->group(std::string(group_));
    return o;
  }
  CLI::App* run_;  // not touched while the filter says no (probing)
  OptionFilter& want_;
  std::string_view group_;
};

}  // namespace cli::detail
