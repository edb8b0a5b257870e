// Error handling: every fallible function returns Result<T>; TRY propagates.
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace common {

// errno (0 if none) plus what we were doing, outermost context first.
struct Error {
  int err = 0;
  std::string what;

  // "what: strerror(err)" as shown to people.
  std::string message() const {
    if (err == 0) return what;
    return fmt::format("{}: {}", what, std::strerror(err));
  }
};

template <class T>
using Result = std::expected<T, Error>;

// fail(errno, "open '{}'", path) builds an unexpected Error.
template <class... Args>
std::unexpected<Error> fail(int err, fmt::format_string<Args...> f, Args&&... args) {
  return std::unexpected(Error{err, fmt::format(f, std::forward<Args>(args)...)});
}

// Prefix more context onto an error travelling up: "bind '/data': open '/data': ...".
template <class... Args>
Error context(Error e, fmt::format_string<Args...> f, Args&&... args) {
  std::string outer = fmt::format(f, std::forward<Args>(args)...);
  e.what = e.what.empty() ? outer : outer + ": " + e.what;
  return e;
}

}  // namespace common

// TRY(expr): evaluates a Result; returns its error from the enclosing function, else yields the
// value. A GNU statement expression (hence no -Wpedantic).
#define TRY(...)                                                              \
  ({                                                                          \
    auto&& try_result_ = (__VA_ARGS__);                                       \
    if (!try_result_) return std::unexpected(std::move(try_result_).error()); \
    std::move(try_result_).value();                                           \
  })

// TRY_CTX(expr, "fmt", args...): like TRY, prefixing context on failure.
#define TRY_CTX(expr, ...)                                                                    \
  ({                                                                                          \
    auto&& try_result_ = (expr);                                                              \
    if (!try_result_)                                                                         \
      return std::unexpected(::common::context(std::move(try_result_).error(), __VA_ARGS__)); \
    std::move(try_result_).value();                                                           \
  })
