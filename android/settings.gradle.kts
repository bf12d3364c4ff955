// The kitepush Android library (AAR). See README.md: the native part is built by cargo-ndk from
// the Rust crate one directory up.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "kitepush"
