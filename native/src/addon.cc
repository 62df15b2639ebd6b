// JavaScript bindings (src/native/types.ts is the contract): argument checks that throw TypeError, the
// batch AEAD calls, openTun, and the DataPlane class whose batches reach JS through threadsafe functions.
#include <arpa/inet.h>
#include <napi.h>

#include <cmath>
#include <memory>

#include "aead.h"
#include "dataplane.h"
#include "tun.h"

namespace ember {
namespace {

constexpr const char* kVersion = "1.0.0";
constexpr double kMaxCounter = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

[[noreturn]] void TypeErr(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

Napi::Uint8Array Bytes(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    TypeErr(env, what + " must be a Uint8Array or Buffer");
  return v.As<Napi::Uint8Array>();
}

double Num(Napi::Env env, Napi::Value v, const std::string& what, double lo, double hi) {
  if (!v.IsNumber()) TypeErr(env, what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || std::floor(d) != d)
    TypeErr(env, what + " must be an integer in [" + std::to_string(static_cast<uint64_t>(lo)) + ", " +
                     std::to_string(static_cast<uint64_t>(hi)) + "], got " + v.ToString().Utf8Value());
  return d;
}

uint32_t U32(Napi::Env env, Napi::Value v, const std::string& what) {
  return static_cast<uint32_t>(Num(env, v, what, 0, 4294967295.0));
}

std::string Str(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsString()) TypeErr(env, what + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

uint32_t Ipv4(Napi::Env env, Napi::Value v, const std::string& what) {
  std::string s = Str(env, v, what);
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) TypeErr(env, what + " must be an IPv4 address, got \"" + s + "\"");
  return ntohl(a.s_addr);
}

std::string Ipv4Text(uint32_t ip) {
  in_addr a{htonl(ip)};
  char b[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, b, sizeof b);
  return b;
}

std::vector<double> Counters(Napi::Env env, Napi::Value v, size_t n) {
  if (!v.IsArray()) TypeErr(env, "counters must be an array of numbers");
  auto a = v.As<Napi::Array>();
  if (a.Length() != n) TypeErr(env, "counters and messages must have the same length");
  std::vector<double> out(n);
  for (size_t i = 0; i < n; i++) out[i] = Num(env, a.Get(i), "counters[" + std::to_string(i) + "]", 0, kMaxCounter);
  return out;
}

Napi::Array Messages(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsArray()) TypeErr(env, what + " must be an array of Uint8Array");
  return v.As<Napi::Array>();
}

Napi::Value AeadSealBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = Bytes(env, info[0], "key");
  if (key.ByteLength() != kKeySize) TypeErr(env, "key must be 32 bytes");
  auto msgs = Messages(env, info[2], "plaintexts");
  auto ctr = Counters(env, info[1], msgs.Length());
  Aead a(key.Data(), true);
  if (!a.ok()) throw Napi::Error::New(env, "OpenSSL refused the ChaCha20-Poly1305 key");
  auto out = Napi::Array::New(env, msgs.Length());
  for (uint32_t i = 0; i < msgs.Length(); i++) {
    auto m = Bytes(env, msgs.Get(i), "plaintexts[" + std::to_string(i) + "]");
    auto b = Napi::Buffer<uint8_t>::New(env, m.ByteLength() + kTagSize);
    if (!a.Seal(static_cast<uint64_t>(ctr[i]), m.Data(), m.ByteLength(), b.Data())) throw Napi::Error::New(env, "seal failed");
    out.Set(i, b);
  }
  return out;
}

Napi::Value AeadOpenBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = Bytes(env, info[0], "key");
  if (key.ByteLength() != kKeySize) TypeErr(env, "key must be 32 bytes");
  auto msgs = Messages(env, info[2], "sealed");
  auto ctr = Counters(env, info[1], msgs.Length());
  Aead a(key.Data(), false);
  if (!a.ok()) throw Napi::Error::New(env, "OpenSSL refused the ChaCha20-Poly1305 key");
  auto out = Napi::Array::New(env, msgs.Length());
  for (uint32_t i = 0; i < msgs.Length(); i++) {
    auto m = Bytes(env, msgs.Get(i), "sealed[" + std::to_string(i) + "]");
    if (m.ByteLength() < kTagSize) {
      out.Set(i, env.Null());
      continue;
    }
    size_t n = m.ByteLength() - kTagSize;
    std::vector<uint8_t> tmp(n + 1);
    if (a.Open(static_cast<uint64_t>(ctr[i]), m.Data(), n, tmp.data())) out.Set(i, Napi::Buffer<uint8_t>::Copy(env, tmp.data(), n));
    else out.Set(i, env.Null());
  }
  return out;
}

Napi::Value OpenTunJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = Str(env, info[0], "name");
  if (name.empty() || name.size() >= 16) TypeErr(env, "name must be 1 to 15 characters");
  std::string addr = Str(env, info[1], "address");
  Ipv4(env, info[1], "address");
  int prefix = static_cast<int>(Num(env, info[2], "prefixLength", 0, 32));
  int mtu = static_cast<int>(Num(env, info[3], "mtu", 68, 65535));
  bool offload = true;
  if (!info[4].IsUndefined()) {
    if (!info[4].IsBoolean()) TypeErr(env, "offload must be a boolean");
    offload = info[4].As<Napi::Boolean>().Value();
  }
  TunResult r = OpenTun(name, addr, prefix, mtu, offload);
  if (r.fd < 0) throw Napi::Error::New(env, r.error);
  auto o = Napi::Object::New(env);
  o.Set("fd", r.fd);
  o.Set("name", r.name);
  o.Set("vnetHdr", r.vnetHdr);
  o.Set("tso", r.tso);
  return o;
}

// Threadsafe functions: the data plane's threads queue batches; the JS thread turns them into arrays.
class JsSink : public Sink {
 public:
  JsSink(Napi::Env env, Napi::Object opts) {
    auto fn = [&](const char* name) {
      auto v = opts.Get(name);
      if (!v.IsFunction()) TypeErr(env, std::string("options.") + name + " must be a function");
      return Napi::ThreadSafeFunction::New(env, v.As<Napi::Function>(), name, 1024, 1);
    };
    // Check all four before creating any: a TypeError must not leave a threadsafe function holding the loop.
    for (const char* n : {"onDatagrams", "onRelaySend", "onDenied", "onWant"})
      if (!opts.Get(n).IsFunction()) TypeErr(env, std::string("options.") + n + " must be a function");
    dg_ = fn("onDatagrams");
    relay_ = fn("onRelaySend");
    denied_ = fn("onDenied");
    want_ = fn("onWant");
  }
  void Release() {
    if (released_) return;
    released_ = true;
    dg_.Release();
    relay_.Release();
    denied_.Release();
    want_.Release();
  }

  bool Datagrams(std::unique_ptr<DatagramBatch> b) override {
    return Queue(dg_, std::move(b), [](Napi::Env env, Napi::Function f, DatagramBatch* d) {
      size_t n = d->spans.size();
      auto pk = Napi::Array::New(env, n), hs = Napi::Array::New(env, n), ps = Napi::Array::New(env, n);
      for (size_t i = 0; i < n; i++) {
        pk.Set(i, Napi::Buffer<uint8_t>::Copy(env, d->bytes.data() + d->spans[i].first, d->spans[i].second));
        hs.Set(i, d->hosts[i]);
        ps.Set(i, d->ports[i]);
      }
      f.Call({pk, hs, ps});
    });
  }
  bool RelaySend(std::unique_ptr<RelayBatch> b) override {
    return Queue(relay_, std::move(b), [](Napi::Env env, Napi::Function f, RelayBatch* d) {
      size_t n = d->spans.size();
      auto ids = Napi::Array::New(env, n), pk = Napi::Array::New(env, n);
      for (size_t i = 0; i < n; i++) {
        ids.Set(i, d->peerIds[i]);
        pk.Set(i, Napi::Buffer<uint8_t>::Copy(env, d->bytes.data() + d->spans[i].first, d->spans[i].second));
      }
      f.Call({ids, pk});
    });
  }
  bool Denied(std::unique_ptr<std::vector<DeniedFlow>> b) override {
    return Queue(denied_, std::move(b), [](Napi::Env env, Napi::Function f, std::vector<DeniedFlow>* d) {
      auto a = Napi::Array::New(env, d->size());
      for (size_t i = 0; i < d->size(); i++) {
        auto& x = (*d)[i];
        auto o = Napi::Object::New(env);
        o.Set("peerId", x.peerId);
        o.Set("proto", x.proto);
        o.Set("srcIp", Ipv4Text(x.src));
        o.Set("dstIp", Ipv4Text(x.dst));
        o.Set("srcPort", x.sport);
        o.Set("dstPort", x.dport);
        a.Set(i, o);
      }
      f.Call({a});
    });
  }
  bool Want(std::unique_ptr<std::vector<uint32_t>> b) override {
    return Queue(want_, std::move(b), [](Napi::Env env, Napi::Function f, std::vector<uint32_t>* d) {
      auto a = Napi::Array::New(env, d->size());
      for (size_t i = 0; i < d->size(); i++) a.Set(i, (*d)[i]);
      f.Call({a});
    });
  }

 private:
  template <typename T, typename F>
  bool Queue(Napi::ThreadSafeFunction& t, std::unique_ptr<T> b, F body) {
    T* raw = b.release();
    auto cb = [body](Napi::Env env, Napi::Function f, T* d) {
      std::unique_ptr<T> own(d);
      if (env == nullptr || f.IsEmpty()) return;  // tearing down: drop
      try {
        body(env, f, d);
      } catch (const Napi::Error& e) {
        // An exception in a user callback must not kill the thread machinery: surface it as uncaught.
        napi_fatal_exception(env, e.Value());
      }
    };
    if (t.NonBlockingCall(raw, cb) != napi_ok) {
      delete raw;
      return false;
    }
    return true;
  }
  Napi::ThreadSafeFunction dg_, relay_, denied_, want_;
  bool released_ = false;
};

class DataPlaneWrap : public Napi::ObjectWrap<DataPlaneWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "DataPlane",
                       {InstanceMethod("start", &DataPlaneWrap::Start), InstanceMethod("close", &DataPlaneWrap::Close),
                        InstanceMethod("setPeer", &DataPlaneWrap::SetPeer),
                        InstanceMethod("removePeer", &DataPlaneWrap::RemovePeer),
                        InstanceMethod("addKeys", &DataPlaneWrap::AddKeys),
                        InstanceMethod("confirmKeys", &DataPlaneWrap::ConfirmKeys),
                        InstanceMethod("dropKeys", &DataPlaneWrap::DropKeys),
                        InstanceMethod("injectRx", &DataPlaneWrap::InjectRx),
                        InstanceMethod("injectTx", &DataPlaneWrap::InjectTx),
                        InstanceMethod("stats", &DataPlaneWrap::Stats),
                        InstanceMethod("peerCounters", &DataPlaneWrap::PeerCounters)});
  }

  DataPlaneWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataPlaneWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) TypeErr(env, "DataPlane options must be an object");
    auto o = info[0].As<Napi::Object>();
    int udp = static_cast<int>(Num(env, o.Get("udpFd"), "options.udpFd", 0, 1 << 30));
    int udp6 = -1;
    if (!o.Get("udpFd6").IsUndefined()) udp6 = static_cast<int>(Num(env, o.Get("udpFd6"), "options.udpFd6", 0, 1 << 30));
    int tun = -1;
    if (!o.Get("tunFd").IsUndefined()) tun = static_cast<int>(Num(env, o.Get("tunFd"), "options.tunFd", 0, 1 << 30));
    uint32_t ip = 0;
    if (!o.Get("overlayIp").IsUndefined()) ip = Ipv4(env, o.Get("overlayIp"), "options.overlayIp");
    sink_ = std::make_unique<JsSink>(env, o);
    plane_ = std::make_unique<DataPlane>(udp, udp6, tun, ip, sink_.get());
    napi_add_env_cleanup_hook(env, Cleanup, this);
    hooked_ = true;
    env_ = env;
  }
  ~DataPlaneWrap() override {
    Shutdown();
    if (hooked_) napi_remove_env_cleanup_hook(env_, Cleanup, this);
  }

 private:
  static void Cleanup(void* p) {
    auto* self = static_cast<DataPlaneWrap*>(p);
    self->hooked_ = false;
    self->Shutdown();
  }
  void Shutdown() {
    if (plane_) plane_->Close();  // joins the threads: nothing calls the sink after this
    if (sink_) sink_->Release();
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    std::string err;
    if (!plane_->Start(&err)) throw Napi::Error::New(info.Env(), err);
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }
  Napi::Value SetPeer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = U32(env, info[0], "peerId");
    if (!info[1].IsObject()) TypeErr(env, "peer must be an object");
    auto o = info[1].As<Napi::Object>();
    PeerConfig c;
    c.overlayIp = Ipv4(env, o.Get("overlayIp"), "peer.overlayIp");
    c.maxDatagram = static_cast<int>(Num(env, o.Get("maxDatagram"), "peer.maxDatagram", 64, 65535));
    auto ep = o.Get("endpoint");
    if (ep.IsNull() || ep.IsUndefined()) {
      c.relay = true;
    } else {
      if (!ep.IsObject()) TypeErr(env, "peer.endpoint must be {host, port} or null");
      auto e = ep.As<Napi::Object>();
      std::string host = Str(env, e.Get("host"), "peer.endpoint.host");
      int port = static_cast<int>(Num(env, e.Get("port"), "peer.endpoint.port", 1, 65535));
      if (!MakeEndpoint(plane_->FamilyFor(host.c_str()), host.c_str(), port, &c.endpoint))
        TypeErr(env, "peer.endpoint.host \"" + host + "\" is not an address this UDP socket can send to");
      c.relay = false;
    }
    if (!o.Get("inbound").IsObject()) TypeErr(env, "peer.inbound must be a FirewallTable");
    auto fw = o.Get("inbound").As<Napi::Object>();
    auto ranges = [&](const char* proto, std::vector<std::pair<uint16_t, uint16_t>>& out) {
      auto v = fw.Get(proto);
      std::string what = std::string("peer.inbound.") + proto;
      if (!v.IsArray()) TypeErr(env, what + " must be an array of [from, to] port ranges");
      auto a = v.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        auto r = a.Get(i);
        if (!r.IsArray() || r.As<Napi::Array>().Length() != 2) TypeErr(env, what + "[" + std::to_string(i) + "] must be [from, to]");
        auto ra = r.As<Napi::Array>();
        auto lo = static_cast<uint16_t>(Num(env, ra.Get(0u), what + " port", 0, 65535));
        auto hi = static_cast<uint16_t>(Num(env, ra.Get(1u), what + " port", 0, 65535));
        if (lo > hi) TypeErr(env, what + "[" + std::to_string(i) + "]: from > to");
        out.emplace_back(lo, hi);
      }
    };
    ranges("tcp", c.inbound.tcp);
    ranges("udp", c.inbound.udp);
    c.inbound.icmp = fw.Get("icmp").ToBoolean().Value();
    plane_->SetPeer(id, c);
    return env.Undefined();
  }
  Napi::Value RemovePeer(const Napi::CallbackInfo& info) {
    plane_->RemovePeer(U32(info.Env(), info[0], "peerId"));
    return info.Env().Undefined();
  }
  Napi::Value AddKeys(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t peer = U32(env, info[0], "peerId");
    uint32_t li = U32(env, info[1], "localIndex");
    uint32_t ri = U32(env, info[2], "remoteIndex");
    auto sk = Bytes(env, info[3], "sendKey");
    auto rk = Bytes(env, info[4], "recvKey");
    if (sk.ByteLength() != kKeySize || rk.ByteLength() != kKeySize) TypeErr(env, "sendKey and recvKey must be 32 bytes");
    bool confirmed = true;
    if (!info[5].IsUndefined()) {
      if (!info[5].IsBoolean()) TypeErr(env, "confirmed must be a boolean");
      confirmed = info[5].As<Napi::Boolean>().Value();
    }
    std::string err;
    if (!plane_->AddKeys(peer, li, ri, sk.Data(), rk.Data(), confirmed, &err)) throw Napi::Error::New(env, err);
    return env.Undefined();
  }
  Napi::Value ConfirmKeys(const Napi::CallbackInfo& info) {
    plane_->ConfirmKeys(U32(info.Env(), info[0], "localIndex"));
    return info.Env().Undefined();
  }
  Napi::Value DropKeys(const Napi::CallbackInfo& info) {
    plane_->DropKeys(U32(info.Env(), info[0], "localIndex"));
    return info.Env().Undefined();
  }
  Napi::Value InjectRx(const Napi::CallbackInfo& info) {
    auto p = Bytes(info.Env(), info[0], "packet");
    plane_->InjectRx(p.Data(), p.ByteLength());
    return info.Env().Undefined();
  }
  Napi::Value InjectTx(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) TypeErr(env, "injectTx takes an array of packets");
    auto arr = info[0].As<Napi::Array>();
    std::vector<std::pair<const uint8_t*, size_t>> pkts;
    pkts.reserve(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
      auto p = Bytes(env, arr.Get(i), "packet");
      pkts.emplace_back(p.Data(), p.ByteLength());
    }
    plane_->InjectTx(pkts);
    return env.Undefined();
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ember::Stats s = plane_->GetStats();
    auto o = Napi::Object::New(env);
    o.Set("udpRxPackets", static_cast<double>(s.udpRxPackets));
    o.Set("udpRxBatches", static_cast<double>(s.udpRxBatches));
    o.Set("udpTxPackets", static_cast<double>(s.udpTxPackets));
    o.Set("udpTxCalls", static_cast<double>(s.udpTxCalls));
    o.Set("tunRxPackets", static_cast<double>(s.tunRxPackets));
    o.Set("tunReads", static_cast<double>(s.tunReads));
    o.Set("tunWrites", static_cast<double>(s.tunWrites));
    o.Set("staged", static_cast<double>(s.staged));
    o.Set("tunTxPackets", static_cast<double>(s.tunTxPackets));
    auto d = Napi::Object::New(env);
    for (int i = 0; i < kDropCount; i++) d.Set(kDropNames[i], static_cast<double>(s.drops[i]));
    o.Set("drops", d);
    o.Set("gso", s.gso);
    o.Set("gro", s.gro);
    o.Set("tunVnetHdr", s.tunVnetHdr);
    return o;
  }
  Napi::Value PeerCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto v = plane_->GetPeerStats();
    auto a = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); i++) {
      auto o = Napi::Object::New(env);
      o.Set("peerId", v[i].peerId);
      o.Set("sinceRxMs", static_cast<double>(v[i].sinceRxMs));
      o.Set("rxPackets", static_cast<double>(v[i].rxPackets));
      o.Set("txPackets", static_cast<double>(v[i].txPackets));
      o.Set("rxBytes", static_cast<double>(v[i].rxBytes));
      o.Set("txBytes", static_cast<double>(v[i].txBytes));
      a.Set(i, o);
    }
    return a;
  }

  std::unique_ptr<JsSink> sink_;
  std::unique_ptr<DataPlane> plane_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
};

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", kVersion);
  exports.Set("aeadSealBatch", Napi::Function::New(env, AeadSealBatch, "aeadSealBatch"));
  exports.Set("aeadOpenBatch", Napi::Function::New(env, AeadOpenBatch, "aeadOpenBatch"));
  exports.Set("openTun", Napi::Function::New(env, OpenTunJs, "openTun"));
  exports.Set("DataPlane", DataPlaneWrap::Init(env));
  return exports;
}

}  // namespace ember

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return ember::Init(env, exports); }

NODE_API_MODULE(ember_native, InitModule)
