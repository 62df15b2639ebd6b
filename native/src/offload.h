// TUN offloads (IFF_VNET_HDR, TUNSETOFFLOAD): every packet read from or written to the device carries a
// virtio_net_hdr; with TSO the kernel hands over TCP super-packets of up to 64 KiB (one read instead of ~45)
// with the checksum left for us, and we cut them into MTU-sized segments, each a complete IPv4/TCP packet,
// as the NIC would. Pure functions on buffers; the data plane (dataplane.cc) reads and writes the device.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ember {

constexpr size_t kVnetHdrSize = 10;  // struct virtio_net_hdr (TUNSETVNETHDRSZ default)
constexpr uint8_t kVnetNeedsCsum = 1;
constexpr uint8_t kGsoNone = 0, kGsoTcpV4 = 1, kGsoEcn = 0x80;

struct VnetHdr {
  uint8_t flags = 0, gsoType = 0;
  uint16_t hdrLen = 0, gsoSize = 0, csumStart = 0, csumOffset = 0;  // host byte order (legacy TUN header)
};

VnetHdr ReadVnetHdr(const uint8_t* p);

// RFC 1071 arithmetic: a running sum of 16-bit big-endian words, folded and complemented at the end.
uint32_t SumWords(const uint8_t* p, size_t n, uint32_t sum);
uint16_t Finish(uint32_t sum);

// NEEDS_CSUM: the kernel left the pseudo-header sum in the L4 checksum field; sum from start to the end and
// store the result at start + offset. False when the offsets do not fit the packet.
bool CompleteChecksum(uint8_t* pkt, size_t len, size_t start, size_t offset);

// How many segments a TSO IPv4/TCP super-packet makes with this MSS; -1 when it is not one (bad headers,
// no payload, MSS 0).
int Tcp4SegmentCount(const uint8_t* pkt, size_t len, size_t mss);

// Segments [first, first + count) of that super-packet, each written at out + i * stride with its length in
// lens[i]: the IP and TCP headers copied, total length, IP id (+ segment number), sequence number and flags
// (FIN and PSH only on the last segment, CWR only on the first) adjusted, both checksums computed in full.
void SplitTcp4(const uint8_t* pkt, size_t len, size_t mss, int first, int count, uint8_t* out, size_t stride,
               size_t* lens);

// GRO for TUN writes: how many of the packets from pkts[0] on (at least 1) are consecutive segments of one
// IPv4/TCP flow that the kernel can take as one super-packet: same addresses, ports, TOS, TTL, ack, window,
// flags (FIN/PSH only on the last) and options; contiguous sequence numbers; equal payloads except a shorter
// last one; at most 64 KiB. With 2 or more, out receives the virtio_net_hdr and the merged packet (gso TCPV4,
// partial checksum for the kernel to finish), and *outLen its length; out needs kVnetHdrSize + 65535 bytes.
struct PacketRef {
  const uint8_t* data;
  size_t len;
};
size_t CoalesceTcp4(const PacketRef* pkts, size_t n, uint8_t* out, size_t* outLen);

}  // namespace ember
