// TUN device setup through ioctls only (no `ip` binary): IFF_TUN | IFF_NO_PI, IPv4 address, netmask, MTU, up.
#pragma once
#include <string>

namespace ember {

struct TunResult {
  int fd = -1;
  std::string name;
  std::string error;  // empty on success: names the step and errno text
};

TunResult OpenTun(const std::string& name, const std::string& address, int prefixLength, int mtu);

}  // namespace ember
