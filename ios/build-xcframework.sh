#!/usr/bin/env bash
# Builds KitePush.xcframework: libkitepush.a for iOS devices (aarch64-apple-ios) and for the
# simulator (aarch64-apple-ios-sim + x86_64-apple-ios merged with lipo), each with the headers
# (kitepush.h, KPLivePusher.h) and module.modulemap, plus the Objective-C wrapper compiled in.
#
# Needs macOS with Xcode (xcodebuild, xcrun, lipo, libtool) and
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
# This script has NOT been run by the project: the machines it is developed on are Debian without
# an Apple toolchain. The wrapper itself is compiled and tested on Debian (tests/ios.rs).
#
# Usage: ios/build-xcframework.sh [OUT_DIR]   (default: target/ios)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/ios}
IOS_MIN=${IOS_MIN:-12.0}
export IPHONEOS_DEPLOYMENT_TARGET=$IOS_MIN

for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
    cargo build --release --lib --target "$t"
done

rm -rf "$OUT"
mkdir -p "$OUT/headers" "$OUT/device" "$OUT/simulator"
cp include/kitepush.h ios/Sources/KPLivePusher.h ios/module.modulemap "$OUT/headers/"

# The wrapper, compiled with ARC for one slice: $1 sdk, $2 clang target, $3 output object.
wrapper() {
    xcrun --sdk "$1" clang -c -fobjc-arc -fmodules -O2 -target "$2" \
        -Iinclude -Iios/Sources ios/Sources/KPLivePusher.m -o "$3"
}

wrapper iphoneos "arm64-apple-ios$IOS_MIN" "$OUT/device/KPLivePusher.o"
libtool -static -o "$OUT/device/libkitepush.a" \
    target/aarch64-apple-ios/release/libkitepush.a "$OUT/device/KPLivePusher.o"

wrapper iphonesimulator "arm64-apple-ios$IOS_MIN-simulator" "$OUT/simulator/KPLivePusher-arm64.o"
wrapper iphonesimulator "x86_64-apple-ios$IOS_MIN-simulator" "$OUT/simulator/KPLivePusher-x86_64.o"
libtool -static -o "$OUT/simulator/libkitepush-arm64.a" \
    target/aarch64-apple-ios-sim/release/libkitepush.a "$OUT/simulator/KPLivePusher-arm64.o"
libtool -static -o "$OUT/simulator/libkitepush-x86_64.a" \
    target/x86_64-apple-ios/release/libkitepush.a "$OUT/simulator/KPLivePusher-x86_64.o"
lipo -create -output "$OUT/simulator/libkitepush.a" \
    "$OUT/simulator/libkitepush-arm64.a" "$OUT/simulator/libkitepush-x86_64.a"

xcodebuild -create-xcframework \
    -library "$OUT/device/libkitepush.a" -headers "$OUT/headers" \
    -library "$OUT/simulator/libkitepush.a" -headers "$OUT/headers" \
    -output "$OUT/KitePush.xcframework"
echo "built $OUT/KitePush.xcframework"
