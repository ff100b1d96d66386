{
  "variables": {
    # node-gyp rebuild --memseal_sanitize=1 (or npm_config_memseal_sanitize=1) adds
    # AddressSanitizer + UndefinedBehaviorSanitizer; the normal build keeps -Werror.
    "memseal_sanitize%": 0
  },
  "targets": [
    {
      "target_name": "memseal",
      "sources": [
        "native/addon.cc",
        "native/constants.cc",
        "native/memfd.cc",
        "native/mapping.cc",
        "native/channel.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"],
      "cflags_cc": ["-Wall", "-Wextra", "-Werror", "-fno-exceptions", "-std=c++17", "-fvisibility=hidden"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "conditions": [
        ["memseal_sanitize==1", {
          "cflags": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"],
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
