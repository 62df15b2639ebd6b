{
  # Built by scripts/build-native.mjs with npm's node-gyp against the local Node headers (--nodedir).
  # OpenSSL is not linked: Node exports its own OpenSSL symbols, and the headers ship with Node's.
  "targets": [{
    "target_name": "ember_native",
    "sources": [
      "src/aead.cc", "src/tun.cc", "src/udp_batch.cc", "src/offload.cc", "src/firewall.cc", "src/dataplane.cc", "src/addon.cc"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "libraries": ["-lpthread"]
  }]
}
