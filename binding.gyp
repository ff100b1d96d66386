{
  "targets": [
    {
      "target_name": "memseal",
      "sources": [
        "native/addon.cc",
        "native/constants.cc",
        "native/fd.cc",
        "native/memfd.cc",
        "native/mapping.cc",
        "native/socket.cc",
        "native/recv.cc",
        "native/poll.cc",
        "native/pool.cc",
        "native/release.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"],
      "cflags_cc": ["-Wall", "-Wextra", "-Werror", "-fno-exceptions", "-std=c++17", "-fvisibility=hidden"],
      "cflags_cc!": ["-std=gnu++17"]
    }
  ]
}
