#include "offload.h"

#include <algorithm>
#include <cstring>

namespace ember {

namespace {
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;
constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint32_t Be32(const uint8_t* p) { return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]; }
void PutBe32(uint8_t* p, uint32_t v) {
  PutBe16(p, static_cast<uint16_t>(v >> 16));
  PutBe16(p + 2, static_cast<uint16_t>(v));
}

struct Tcp4 {
  size_t ihl, thl, total, payload;
};

bool ParseTcp4(const uint8_t* pkt, size_t len, Tcp4* t) {
  if (len < 40 || (pkt[0] >> 4) != 4 || pkt[9] != kProtoTcp) return false;
  t->ihl = (pkt[0] & 0x0f) * 4u;
  t->total = Be16(pkt + 2);
  if (t->ihl < 20 || t->total > len || t->total < t->ihl + 20) return false;
  t->thl = (pkt[t->ihl + 12] >> 4) * 4u;
  if (t->thl < 20 || t->ihl + t->thl > t->total) return false;
  t->payload = t->total - t->ihl - t->thl;
  return true;
}
}  // namespace

VnetHdr ReadVnetHdr(const uint8_t* p) {
  VnetHdr h;
  h.flags = p[0];
  h.gsoType = p[1];
  memcpy(&h.hdrLen, p + 2, 2);
  memcpy(&h.gsoSize, p + 4, 2);
  memcpy(&h.csumStart, p + 6, 2);
  memcpy(&h.csumOffset, p + 8, 2);
  return h;
}

uint32_t SumWords(const uint8_t* p, size_t n, uint32_t sum) {
  uint64_t s = sum;
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    s += uint32_t{Be16(p + i)} + Be16(p + i + 2) + Be16(p + i + 4) + Be16(p + i + 6);
  for (; i + 1 < n; i += 2) s += Be16(p + i);
  if (i < n) s += uint32_t{p[i]} << 8;
  while (s >> 32) s = (s & 0xffffffff) + (s >> 32);
  return static_cast<uint32_t>(s);
}

uint16_t Finish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

bool CompleteChecksum(uint8_t* pkt, size_t len, size_t start, size_t offset) {
  if (start >= len || start + offset + 2 > len) return false;
  uint16_t c = Finish(SumWords(pkt + start, len - start, 0));
  // UDP sends a computed zero as all ones (RFC 768: zero means "no checksum").
  if (c == 0 && len >= 20 && (pkt[0] >> 4) == 4 && pkt[9] == kProtoUdp) c = 0xffff;
  PutBe16(pkt + start + offset, c);
  return true;
}

int Tcp4SegmentCount(const uint8_t* pkt, size_t len, size_t mss) {
  Tcp4 t;
  if (mss == 0 || !ParseTcp4(pkt, len, &t) || t.payload == 0) return -1;
  return static_cast<int>((t.payload + mss - 1) / mss);
}

void SplitTcp4(const uint8_t* pkt, size_t len, size_t mss, int first, int count, uint8_t* out, size_t stride,
               size_t* lens) {
  Tcp4 t;
  if (!ParseTcp4(pkt, len, &t)) return;
  size_t hdrs = t.ihl + t.thl;
  uint16_t id = Be16(pkt + 4);
  uint32_t seq = Be32(pkt + t.ihl + 4);
  uint8_t flags = pkt[t.ihl + 13];
  uint32_t addrs = SumWords(pkt + 12, 8, 0);  // the pseudo-header's source and destination
  for (int k = 0; k < count; k++) {
    int i = first + k;
    size_t off = static_cast<size_t>(i) * mss;
    size_t seg = std::min(mss, t.payload - off);
    uint8_t* o = out + static_cast<size_t>(k) * stride;
    memcpy(o, pkt, hdrs);
    memcpy(o + hdrs, pkt + hdrs + off, seg);
    PutBe16(o + 2, static_cast<uint16_t>(hdrs + seg));
    PutBe16(o + 4, static_cast<uint16_t>(id + i));
    PutBe16(o + 10, 0);
    PutBe16(o + 10, Finish(SumWords(o, t.ihl, 0)));
    uint8_t* tcp = o + t.ihl;
    PutBe32(tcp + 4, seq + static_cast<uint32_t>(off));
    uint8_t f = flags;
    if (off + seg < t.payload) f &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (i != 0) f &= static_cast<uint8_t>(~kTcpCwr);
    tcp[13] = f;
    PutBe16(tcp + 16, 0);
    uint32_t sum = addrs + kProtoTcp + static_cast<uint32_t>(t.thl + seg);
    PutBe16(tcp + 16, Finish(SumWords(tcp, t.thl + seg, sum)));
    lens[k] = hdrs + seg;
  }
}

size_t CoalesceTcp4(const PacketRef* pkts, size_t n, uint8_t* out, size_t* outLen) {
  constexpr uint8_t kNoMerge = 0x02 | 0x04 | 0x20;  // SYN, RST, URG
  constexpr uint8_t kAck = 0x10;
  Tcp4 f;
  const uint8_t* p0 = pkts[0].data;
  if (n < 2 || !ParseTcp4(p0, pkts[0].len, &f) || f.ihl != 20 || f.payload == 0) return 1;
  if ((p0[6] & 0x3f) != 0 || p0[7] != 0) return 1;  // a fragment (MF or offset)
  uint8_t flags0 = p0[f.ihl + 13];
  if ((flags0 & kNoMerge) || !(flags0 & kAck) || (flags0 & (kTcpFin | kTcpPsh))) return 1;
  size_t hdrs = f.ihl + f.thl, mss = f.payload, total = f.total;
  uint32_t next = Be32(p0 + f.ihl + 4) + static_cast<uint32_t>(f.payload);
  size_t k = 1;
  uint8_t lastFlags = flags0;
  for (; k < n; k++) {
    const uint8_t* p = pkts[k].data;
    Tcp4 t;
    if (!ParseTcp4(p, pkts[k].len, &t) || t.ihl != 20 || t.thl != f.thl || t.payload == 0 || t.payload > mss) break;
    if (total + t.payload > 65535) break;
    // IP: TOS, DF and fragment bits, TTL, protocol, addresses as the first; TCP: ports, ack, offset, window,
    // options as the first, flags as the first but for FIN and PSH (allowed on the last), next in sequence.
    if (p[1] != p0[1] || p[6] != p0[6] || p[7] != p0[7] || p[8] != p0[8] || memcmp(p + 12, p0 + 12, 8) != 0) break;
    const uint8_t* th = p + t.ihl;
    const uint8_t* th0 = p0 + f.ihl;
    if (memcmp(th, th0, 4) != 0 || memcmp(th + 8, th0 + 8, 5) != 0 || memcmp(th + 14, th0 + 14, 2) != 0) break;
    if (memcmp(th + 20, th0 + 20, t.thl - 20) != 0) break;
    if ((th[13] & static_cast<uint8_t>(~(kTcpFin | kTcpPsh))) != flags0) break;
    if (Be32(th + 4) != next) break;
    next += static_cast<uint32_t>(t.payload);
    total += t.payload;
    lastFlags = th[13];
    if (t.payload < mss || (lastFlags & (kTcpFin | kTcpPsh))) {
      k++;
      break;
    }
  }
  if (k < 2) return 1;
  // virtio_net_hdr, host byte order: NEEDS_CSUM over the TCP segment, GSO TCPv4 cut at the first payload size.
  uint8_t* h = out;
  h[0] = kVnetNeedsCsum;
  h[1] = kGsoTcpV4;
  uint16_t v[4] = {static_cast<uint16_t>(hdrs), static_cast<uint16_t>(mss), static_cast<uint16_t>(f.ihl), 16};
  memcpy(h + 2, v, sizeof v);
  uint8_t* o = out + kVnetHdrSize;
  memcpy(o, p0, hdrs);
  size_t at = hdrs;
  for (size_t i = 0; i < k; i++) {
    const uint8_t* p = pkts[i].data;
    size_t plen = Be16(p + 2) - hdrs;
    memcpy(o + at, p + hdrs, plen);
    at += plen;
  }
  PutBe16(o + 2, static_cast<uint16_t>(at));
  PutBe16(o + 10, 0);
  PutBe16(o + 10, Finish(SumWords(o, f.ihl, 0)));
  o[f.ihl + 13] = lastFlags | flags0;
  // The pseudo-header sum, folded and not complemented: the kernel (or NIC) finishes it over the segment.
  uint32_t pseudo = SumWords(o + 12, 8, 0) + kProtoTcp + static_cast<uint32_t>(at - f.ihl);
  PutBe16(o + f.ihl + 16, static_cast<uint16_t>(~Finish(pseudo)));
  *outLen = kVnetHdrSize + at;
  return k;
}

}  // namespace ember
