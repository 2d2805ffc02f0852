{
  "targets": [
    {
      "target_name": "csi_native",
      "sources": ["src/csi_native.c", "src/mount_ops.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-O3"],
      "cflags": [
        "-Wall",
        "-Wextra",
        "-Werror",
        "-O2",
        "-fstack-protector-strong",
        "-U_FORTIFY_SOURCE",
        "-D_FORTIFY_SOURCE=2"
      ]
    }
  ]
}
