// Builds kitepush-release.aar: the Java API (src/main/java) plus libkitepush.so for each ABI,
// compiled from the Rust crate (../Cargo.toml, feature `jni`) by cargo-ndk.
// Needs: the Android SDK + NDK (ANDROID_NDK_HOME), rustup targets aarch64-linux-android,
// armv7-linux-androideabi, x86_64-linux-android, and `cargo install cargo-ndk`.
// The host JUnit suite (src/hostTest) is not an Android unit test: tests/android.rs runs it.
plugins {
    id("com.android.library") version "8.5.2"
}

val rustAbis = listOf("arm64-v8a", "armeabi-v7a", "x86_64")
val rustJniLibs = layout.buildDirectory.dir("rustJniLibs")

android {
    namespace = "dev.kitepush"
    compileSdk = 34
    // NDK r26+: cargo-ndk reads ANDROID_NDK_HOME; pin the same one here for the packaging step.
    ndkVersion = "26.3.11579264"

    defaultConfig {
        minSdk = 21
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        // The API is written for Java 8 (tests/android.rs compiles it with --release 8).
        sourceCompatibility = JavaVersion.VERSION_1_8
        targetCompatibility = JavaVersion.VERSION_1_8
    }
    sourceSets["main"].jniLibs.srcDir(rustJniLibs)
    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
}

// One cargo-ndk run builds every ABI and lays the libraries out as jniLibs/<abi>/libkitepush.so.
val cargoNdk by tasks.registering(Exec::class) {
    description = "Builds libkitepush.so for ${rustAbis.joinToString()} with cargo-ndk"
    workingDir = rootDir.parentFile
    val args = mutableListOf("cargo", "ndk", "--platform", "21")
    rustAbis.forEach { args += listOf("-t", it) }
    args += listOf("-o", rustJniLibs.get().asFile.absolutePath, "build", "--release", "--lib", "--features", "jni")
    commandLine(args)
    inputs.dir(rootDir.parentFile.resolve("src"))
    inputs.file(rootDir.parentFile.resolve("Cargo.toml"))
    inputs.file(rootDir.parentFile.resolve("Cargo.lock"))
    // Its [env] sets how aws-lc is built (AWS_LC_SYS_NO_JITTER_ENTROPY).
    inputs.file(rootDir.parentFile.resolve(".cargo/config.toml"))
    outputs.dir(rustJniLibs)
}

tasks.named("preBuild") { dependsOn(cargoNdk) }
