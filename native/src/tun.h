// TUN device setup through ioctls only (no `ip` binary): IFF_TUN | IFF_NO_PI, IPv4 address, netmask, MTU, up;
// with offload, IFF_VNET_HDR and TUNSETOFFLOAD (checksum, TSO4) as far as the kernel allows (offload.h).
#pragma once
#include <string>

namespace ember {

struct TunResult {
  int fd = -1;
  std::string name;
  bool vnetHdr = false;  // every packet read or written carries a virtio_net_hdr
  bool tso = false;      // the kernel may hand over TCP super-packets (TUN_F_TSO4) with partial checksums
  std::string error;  // empty on success: names the step and errno text
};

TunResult OpenTun(const std::string& name, const std::string& address, int prefixLength, int mtu, bool offload);

}  // namespace ember
