#include "tun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace ember {

static std::string Err(const std::string& step) {
  int e = errno;
  std::string s = step + ": " + strerror(e);
  if (e == EPERM || e == EACCES) s += " (TUN needs root or CAP_NET_ADMIN)";
  return s;
}

TunResult OpenTun(const std::string& name, const std::string& address, int prefixLength, int mtu, bool offload) {
  TunResult r;
  in_addr addr{};
  if (inet_pton(AF_INET, address.c_str(), &addr) != 1) {
    r.error = "address " + address + " is not an IPv4 address";
    return r;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    r.error = Err("opening /dev/net/tun");
    return r;
  }
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    r.error = Err("TUNSETIFF " + name);
    close(fd);
    return r;
  }
  r.name = ifr.ifr_name;
  r.vnetHdr = offload;
  // Checksums and TSO for IPv4 only (the overlay is IPv4); a kernel that refuses keeps plain packets behind
  // the header. No UDP segmentation offload: it would need the peer to coalesce.
  r.tso = offload && ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(TUN_F_CSUM | TUN_F_TSO4)) == 0;
  // The data plane's threads poll() this fd; a blocking read would stall close().
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    r.error = Err("making the TUN fd non-blocking");
    close(fd);
    return r;
  }
  // Interface configuration goes through any AF_INET socket.
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    r.error = Err("socket(AF_INET) for interface ioctls");
    close(fd);
    return r;
  }
  auto fail = [&](const std::string& step) {
    r.error = Err(step);
    close(s);
    close(fd);
    r.fd = -1;
    return r;
  };
  ifreq q{};
  strncpy(q.ifr_name, r.name.c_str(), IFNAMSIZ - 1);
  auto* sin = reinterpret_cast<sockaddr_in*>(&q.ifr_addr);
  sin->sin_family = AF_INET;
  sin->sin_addr = addr;
  if (ioctl(s, SIOCSIFADDR, &q) < 0) return fail("setting address " + address + " on " + r.name);
  uint32_t mask = prefixLength == 0 ? 0 : htonl(~uint32_t{0} << (32 - prefixLength));
  sin->sin_addr.s_addr = mask;
  if (ioctl(s, SIOCSIFNETMASK, &q) < 0) return fail("setting netmask /" + std::to_string(prefixLength) + " on " + r.name);
  q.ifr_mtu = mtu;
  if (ioctl(s, SIOCSIFMTU, &q) < 0) return fail("setting MTU " + std::to_string(mtu) + " on " + r.name);
  // TUN defaults to a 500-packet queue: a TCP burst overflows it before the tx thread's next batch.
  q.ifr_qlen = 1000;
  if (ioctl(s, SIOCSIFTXQLEN, &q) < 0) return fail("setting the transmit queue length of " + r.name);
  if (ioctl(s, SIOCGIFFLAGS, &q) < 0) return fail("reading flags of " + r.name);
  q.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &q) < 0) return fail("bringing " + r.name + " up");
  close(s);
  r.fd = fd;
  return r;
}

}  // namespace ember
