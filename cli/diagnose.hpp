// stockade diagnose: why can't a jail reach something (see diagnose.cpp).
#pragma once

#include <string>

namespace cli {

// Walks a running jail's network layers (link, addresses, routes, resolv.conf, resolver, egress
// rule, connection) and prints each until the first that fails, with a hint. target: "" or
// HOST[:PORT]. Returns 0 if every layer passed, 1 at a failing layer, 2 on bad input.
int cmd_diagnose(const std::string& id, const std::string& target, bool json);

}  // namespace cli
