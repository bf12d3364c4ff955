//! JNI glue for the Android shim (`android/`, package `dev.kitepush`), feature `jni`.
//!
//! Every native method of `dev.kitepush.Native` is one C ABI call: it converts the Java arguments
//! (strings, arrays, direct buffers) to what the `kp_*` function takes, calls it and returns its
//! `kp_result`; the Java side turns non-zero codes into `KitePushException`s with
//! `kp_last_error_message()`, read on the same thread. Going through the C functions rather than
//! the Rust API keeps every check, default and error message identical to what C apps get.
//!
//! Byte arrays are read in place (`GetPrimitiveArrayCritical`, no copy on the JVMs that pin) and
//! direct buffers through their address: the C ABI copies the media before it returns, so the
//! Java memory is only borrowed for the call. The only checks made here are those the C ABI
//! cannot make because a C pointer carries no length: offsets and lengths must lie inside the
//! Java array or buffer (else `OUT_OF_BOUNDS`, an `IndexOutOfBoundsException` in Java).

mod listener;
mod messages;

use crate::ffi::config::{self as c_config, kp_config};
use crate::ffi::error::{kp_last_error_message, kp_result_str, set_last_error};
use crate::ffi::event::in_event_callback;
use crate::ffi::pusher::{self as c_pusher, kp_destination_stats, kp_pusher, kp_stats, kp_video_frame};
use crate::ffi::video_slot::{self as c_slot, kp_video_slot, kp_video_slot_layout};
use crate::ffi::{kp_result, kp_version};
use crate::ResultCode;
use jni::objects::{
    JByteArray, JByteBuffer, JClass, JLongArray, JObject, JObjectArray, JShortArray, JString, ReleaseMode,
};
use jni::sys::{jboolean, jdouble, jfloat, jint, jlong, jstring, JNI_VERSION_1_6};
use jni::{JNIEnv, JavaVM};
use listener::{live_global_refs, on_event, on_stats, ListenerBridge};
use std::ffi::{c_char, c_void, CStr, CString};
use std::mem::size_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null;

/// Returned (negative, never a kp_result) when an offset or length lies outside the Java array or
/// buffer; `Native.java` throws `IndexOutOfBoundsException` for it.
const OUT_OF_BOUNDS: jint = -1;
const INTERNAL: jint = ResultCode::KP_ERR_INTERNAL as jint;

/// What a Java `LivePusher` holds (as a `long`): the C pusher and the listener bridge that is its
/// event callback's userdata, released in that order.
struct JniPusher {
    raw: *mut kp_pusher,
    bridge: Option<Box<ListenerBridge>>,
}

/// Errors of the glue itself (a JNI call failed): reported like the C ABI's internal errors.
type GlueResult = Result<jint, jni::errors::Error>;

/// Runs a native method's body: a panic or a failed JNI call becomes KP_ERR_INTERNAL with the
/// thread's last error message set, as the C ABI's panic boundary does. Never unwinds into the JVM.
fn boundary(name: &str, body: impl FnOnce() -> GlueResult) -> jint {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            set_last_error(&format!("internal: JNI {name}: {e}"));
            INTERNAL
        }
        Err(_) => {
            set_last_error(&format!("internal: panic in JNI {name}"));
            INTERNAL
        }
    }
}

fn pusher(handle: jlong) -> *mut kp_pusher {
    if handle == 0 {
        // The C ABI answers a NULL pusher with KP_ERR_INVALID_ARGUMENT (use after close).
        std::ptr::null_mut()
    } else {
        // SAFETY: a non-zero handle comes from pusherNew and the Java handle guard keeps it alive
        // until no call is in flight.
        unsafe { (*(handle as *const JniPusher)).raw }
    }
}

fn config(handle: jlong) -> *mut kp_config {
    handle as *mut kp_config
}

/// Calls `f` with the string as a C string (NULL for a Java null, which the C ABI refuses).
fn with_cstr(env: &mut JNIEnv, s: &JString, f: impl FnOnce(*const c_char) -> kp_result) -> GlueResult {
    if s.is_null() {
        return Ok(f(null()));
    }
    let s: String = env.get_string(s)?.into();
    match CString::new(s) {
        Ok(c) => Ok(f(c.as_ptr())),
        Err(_) => {
            set_last_error("the string contains a NUL character");
            Ok(ResultCode::KP_ERR_INVALID_ARGUMENT as jint)
        }
    }
}

fn in_bounds(offset: jint, len: jint, total: usize) -> bool {
    offset >= 0 && len >= 0 && (offset as usize).checked_add(len as usize).is_some_and(|end| end <= total)
}

/// Calls `f` with `len` bytes of the array from `offset`, read in place (NULL for a Java null).
fn with_bytes(
    env: &mut JNIEnv,
    array: &JByteArray,
    offset: jint,
    len: jint,
    f: impl FnOnce(*const u8, usize) -> kp_result,
) -> GlueResult {
    if array.is_null() {
        return Ok(f(null(), 0));
    }
    let total = env.get_array_length(array)? as usize;
    if !in_bounds(offset, len, total) {
        return Ok(OUT_OF_BOUNDS);
    }
    // SAFETY: no JNI call is made while the critical region is open: `f` is a C ABI call, which
    // copies the bytes and returns without blocking (the header says so for every push_*).
    let elems = unsafe { env.get_array_elements_critical(array, ReleaseMode::NoCopyBack) }?;
    // SAFETY: offset + len <= the array's length.
    let data = unsafe { elems.as_ptr().cast::<u8>().add(offset as usize) };
    Ok(f(data, len as usize))
}

/// The address of `len` bytes from `pos` in a direct buffer (NULL for a Java null).
fn buffer_range(
    env: &JNIEnv,
    buf: &JByteBuffer,
    pos: jint,
    len: jint,
) -> Result<Option<*const u8>, jni::errors::Error> {
    if buf.is_null() {
        return Ok(Some(null()));
    }
    let base = env.get_direct_buffer_address(buf)?;
    let capacity = env.get_direct_buffer_capacity(buf)?;
    if !in_bounds(pos, len, capacity) {
        return Ok(None);
    }
    // SAFETY: pos + len <= capacity.
    Ok(Some(unsafe { base.add(pos as usize).cast_const() }))
}

// ---- library -------------------------------------------------------------------------------

/// Declares the JNI version the glue needs (direct buffers: 1.4; 1.6 is what Android documents).
#[no_mangle]
pub extern "system" fn JNI_OnLoad(_vm: JavaVM, _reserved: *mut c_void) -> jint {
    JNI_VERSION_1_6
}

fn new_jstring(env: &JNIEnv, s: *const c_char) -> jstring {
    // SAFETY: the C ABI's strings are static or thread-owned, NUL-terminated and never NULL.
    let text = unsafe { CStr::from_ptr(s) }.to_string_lossy();
    env.new_string(text).map(|s| s.into_raw()).unwrap_or(std::ptr::null_mut())
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_version(env: JNIEnv, _: JClass) -> jstring {
    // SAFETY: no arguments.
    new_jstring(&env, unsafe { kp_version() })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_resultStr(env: JNIEnv, _: JClass, code: jint) -> jstring {
    // SAFETY: any value is accepted.
    new_jstring(&env, unsafe { kp_result_str(code) })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_lastErrorMessage(env: JNIEnv, _: JClass) -> jstring {
    // SAFETY: no arguments; the string is valid until the next failing call on this thread.
    new_jstring(&env, unsafe { kp_last_error_message() })
}

/// Global references the glue holds (listeners and their event classes), for the leak test.
#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_liveGlobalRefs(_: JNIEnv, _: JClass) -> jlong {
    live_global_refs()
}

// ---- config --------------------------------------------------------------------------------

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configNew(_: JNIEnv, _: JClass) -> jlong {
    // SAFETY: no arguments; NULL (0) only when memory runs out.
    unsafe { c_config::kp_config_new() as jlong }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configFree(_: JNIEnv, _: JClass, cfg: jlong) {
    // SAFETY: cfg is 0 or from configNew, freed once by LivePusher.create.
    unsafe { c_config::kp_config_free(config(cfg)) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetUrl(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    url: JString,
) -> jint {
    boundary("configSetUrl", || {
        // SAFETY: cfg is live (see configFree); the string outlives the call.
        with_cstr(&mut env, &url, |u| unsafe { c_config::kp_config_set_url(config(cfg), u) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configAddBackupUrl(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    url: JString,
) -> jint {
    boundary("configAddBackupUrl", || {
        // SAFETY: as configSetUrl.
        with_cstr(&mut env, &url, |u| unsafe { c_config::kp_config_add_backup_url(config(cfg), u) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configAddDestination(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    url: JString,
) -> jint {
    boundary("configAddDestination", || {
        let mut index = 0u32;
        // SAFETY: as configSetUrl; index is writable. The index is the order of the calls, as
        // the C ABI documents, so the builder does not need it back.
        with_cstr(&mut env, &url, |u| unsafe { c_config::kp_config_add_destination(config(cfg), u, &mut index) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configAddDestinationBackupUrl(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    destination: jint,
    url: JString,
) -> jint {
    boundary("configAddDestinationBackupUrl", || {
        with_cstr(&mut env, &url, |u| {
            // SAFETY: as configSetUrl.
            unsafe { c_config::kp_config_add_destination_backup_url(config(cfg), destination as u32, u) }
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetVideo(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    width: jint,
    height: jint,
    fps: jdouble,
    bitrate_kbps: jint,
    keyframe_interval: jint,
) -> jint {
    // SAFETY: cfg is live. Java ints arrive here non-negative (the builder checks), so the casts to
    // the C ABI's uint32_t keep their values.
    unsafe {
        c_config::kp_config_set_video(
            config(cfg),
            width as u32,
            height as u32,
            fps,
            bitrate_kbps as u32,
            keyframe_interval as u32,
        )
    }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetVideoEncoder(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    encoder: jint,
) -> jint {
    // SAFETY: cfg is live; unknown values are refused by the C ABI.
    unsafe { c_config::kp_config_set_video_encoder(config(cfg), encoder) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetVideoThreads(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    threads: jint,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_set_video_threads(config(cfg), threads as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configDisableVideo(_: JNIEnv, _: JClass, cfg: jlong) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_disable_video(config(cfg)) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetAudio(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    sample_rate: jint,
    channels: jint,
    bitrate_kbps: jint,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_set_audio(config(cfg), sample_rate as u32, channels as u32, bitrate_kbps as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetAudioEncoder(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    encoder: jint,
) -> jint {
    // SAFETY: cfg is live; unknown values are refused by the C ABI.
    unsafe { c_config::kp_config_set_audio_encoder(config(cfg), encoder) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configDisableAudio(_: JNIEnv, _: JClass, cfg: jlong) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_disable_audio(config(cfg)) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetTimeouts(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    connect_ms: jint,
    stall_ms: jint,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_set_timeouts(config(cfg), connect_ms as u32, stall_ms as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetReconnect(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    first_delay_ms: jint,
    multiplier: jdouble,
    max_delay_ms: jint,
    max_attempts: jint,
    failover_after: jint,
) -> jint {
    // SAFETY: cfg is live.
    unsafe {
        c_config::kp_config_set_reconnect(
            config(cfg),
            first_delay_ms as u32,
            multiplier,
            max_delay_ms as u32,
            max_attempts as u32,
            failover_after as u32,
        )
    }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetRefusedRetry(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    enabled: jboolean,
    interval_ms: jint,
    window_ms: jint,
) -> jint {
    // SAFETY: cfg is live. Non-negative (LivePusherConfig checks).
    unsafe { c_config::kp_config_set_refused_retry(config(cfg), enabled != 0, interval_ms as u32, window_ms as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetPrimaryRetryInterval(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    interval_ms: jint,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_set_primary_retry_interval(config(cfg), interval_ms as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetPauseFps(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    fps: jdouble,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_set_pause_fps(config(cfg), fps) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetVideoScaling(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    mode: jint,
) -> jint {
    // SAFETY: cfg is live; unknown values are refused by the C ABI.
    unsafe { c_config::kp_config_set_video_scaling(config(cfg), mode) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetLatencyBudget(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    budget_ms: jint,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_set_latency_budget(config(cfg), budget_ms as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetAbr(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    enabled: jboolean,
    min_kbps: jint,
    max_kbps: jint,
    allow_fps_reduction: jboolean,
) -> jint {
    // SAFETY: cfg is live.
    unsafe {
        c_config::kp_config_set_abr(
            config(cfg),
            enabled != 0,
            min_kbps as u32,
            max_kbps as u32,
            allow_fps_reduction != 0,
        )
    }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetEncodeLadder(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    enabled: jboolean,
    lowest_height: jint,
    lowest_fps: jfloat,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_set_encode_ladder(config(cfg), enabled != 0, lowest_height as u32, lowest_fps) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configAddEncodeRung(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    width: jint,
    height: jint,
    fps: jfloat,
    complexity: jint,
) -> jint {
    // SAFETY: cfg is live; unknown complexities are refused by the C ABI.
    unsafe { c_config::kp_config_add_encode_rung(config(cfg), width as u32, height as u32, fps, complexity) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetAlertThresholds(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    net_busy_congestion: jfloat,
    net_busy_ms: jint,
    low_fps_ratio: jfloat,
    low_fps_ms: jint,
    encoder_overload_ms: jint,
) -> jint {
    // SAFETY: cfg is live.
    unsafe {
        c_config::kp_config_set_alert_thresholds(
            config(cfg),
            net_busy_congestion,
            net_busy_ms as u32,
            low_fps_ratio,
            low_fps_ms as u32,
            encoder_overload_ms as u32,
        )
    }
}

/// A Java string as an owned C string (None for a Java null); Err(()) when it holds a NUL.
fn optional_cstring(env: &mut JNIEnv, s: &JString) -> Result<Result<Option<CString>, ()>, jni::errors::Error> {
    if s.is_null() {
        return Ok(Ok(None));
    }
    let s: String = env.get_string(s)?.into();
    Ok(CString::new(s).map(Some).map_err(|_| ()))
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetSrt(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    latency_ms: jint,
    passphrase: JString,
    pbkeylen: jint,
) -> jint {
    boundary("configSetSrt", || {
        let Ok(pass) = optional_cstring(&mut env, &passphrase)? else {
            set_last_error("the passphrase contains a NUL character");
            return Ok(ResultCode::KP_ERR_INVALID_ARGUMENT as jint);
        };
        let ptr = pass.as_ref().map_or(null(), |c| c.as_ptr());
        // SAFETY: cfg is live; ptr is NULL or a string that outlives the call. Non-negative
        // numbers (LivePusherConfig checks).
        Ok(unsafe { c_config::kp_config_set_srt(config(cfg), latency_ms as u32, ptr, pbkeylen as u32) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetSrtStreamId(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    preset: jint,
    resource: JString,
) -> jint {
    boundary("configSetSrtStreamId", || {
        let Ok(res) = optional_cstring(&mut env, &resource)? else {
            set_last_error("the resource contains a NUL character");
            return Ok(ResultCode::KP_ERR_INVALID_ARGUMENT as jint);
        };
        let ptr = res.as_ref().map_or(null(), |c| c.as_ptr());
        // SAFETY: cfg is live; ptr is NULL or a string that outlives the call.
        Ok(unsafe { c_config::kp_config_set_srt_stream_id(config(cfg), preset, ptr) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetWhipBearerToken(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    token: JString,
) -> jint {
    boundary("configSetWhipBearerToken", || {
        let Ok(token) = optional_cstring(&mut env, &token)? else {
            set_last_error("the token contains a NUL character");
            return Ok(ResultCode::KP_ERR_INVALID_ARGUMENT as jint);
        };
        let ptr = token.as_ref().map_or(null(), |c| c.as_ptr());
        // SAFETY: cfg is live; ptr is NULL or a string that outlives the call.
        Ok(unsafe { c_config::kp_config_set_whip_bearer_token(config(cfg), ptr) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetX264Preset(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    preset: JString,
    tune: JString,
    profile: JString,
) -> jint {
    boundary("configSetX264Preset", || {
        let mut strings = [None, None, None];
        for (slot, s) in strings.iter_mut().zip([&preset, &tune, &profile]) {
            match optional_cstring(&mut env, s)? {
                Ok(c) => *slot = c,
                Err(()) => {
                    set_last_error("the string contains a NUL character");
                    return Ok(ResultCode::KP_ERR_INVALID_ARGUMENT as jint);
                }
            }
        }
        let ptr = |c: &Option<CString>| c.as_ref().map_or(null(), |c| c.as_ptr());
        // SAFETY: cfg is live; each pointer is NULL (the default) or a string that outlives the call.
        Ok(unsafe {
            c_config::kp_config_set_x264_preset(config(cfg), ptr(&strings[0]), ptr(&strings[1]), ptr(&strings[2]))
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetX264Vbv(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    maxrate_kbps: jint,
    bufsize_kbit: jint,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_set_x264_vbv(config(cfg), maxrate_kbps as u32, bufsize_kbit as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetX264Threading(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    threading: jint,
) -> jint {
    // SAFETY: cfg is live; unknown values are refused by the C ABI.
    unsafe { c_config::kp_config_set_x264_threading(config(cfg), threading) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetX264Bframes(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    bframes: jint,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { c_config::kp_config_set_x264_bframes(config(cfg), bframes as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configAddCaPem(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    pem: JByteArray,
) -> jint {
    boundary("configAddCaPem", || {
        let len = if pem.is_null() { 0 } else { env.get_array_length(&pem)? };
        // SAFETY: cfg is live; the bytes are readable during the call (the C ABI copies them and
        // makes no JNI call).
        with_bytes(&mut env, &pem, 0, len, |p, n| unsafe {
            crate::ffi::tls::kp_config_add_ca_pem(config(cfg), p.cast(), n)
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetTlsPlatformRoots(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    enable: jboolean,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { crate::ffi::tls::kp_config_set_tls_platform_roots(config(cfg), enable != 0) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetTlsDangerAcceptInvalidCerts(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    accept: jboolean,
) -> jint {
    // SAFETY: cfg is live.
    unsafe { crate::ffi::tls::kp_config_set_tls_danger_accept_invalid_certs(config(cfg), accept != 0) }
}

// ---- pusher --------------------------------------------------------------------------------

/// kp_pusher_new with the listener (may be null) as the event callback and, when
/// `stats_interval_ms` is not negative, as the stats callback every `stats_interval_ms` (the C
/// ABI's value: 0 = every second); writes the handle to `out[0]` on success.
#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherNew(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    listener: JObject,
    stats_interval_ms: jint,
    out: JLongArray,
) -> jint {
    boundary("pusherNew", || {
        if out.is_null() || env.get_array_length(&out)? < 1 {
            return Ok(OUT_OF_BOUNDS);
        }
        let with_stats = stats_interval_ms >= 0;
        let bridge = if listener.is_null() {
            None
        } else {
            Some(Box::new(ListenerBridge::new(&mut env, &listener, with_stats)?))
        };
        let userdata =
            bridge.as_deref().map_or(std::ptr::null_mut(), |b| (b as *const ListenerBridge).cast_mut().cast());
        let cb = bridge.as_ref().map(|_| on_event as unsafe extern "C" fn(_, _));
        // SAFETY: cfg is live; the bridge (userdata) is kept in the JniPusher until after
        // kp_pusher_free has returned, as kp_config_set_event_callback requires.
        let rc = unsafe { c_config::kp_config_set_event_callback(config(cfg), cb, userdata) };
        if rc != 0 {
            return Ok(rc);
        }
        if with_stats {
            // Without a listener the interval is still checked, as the C ABI checks it for a NULL
            // callback.
            let stats_cb = bridge.as_ref().map(|_| on_stats as unsafe extern "C" fn(_, _));
            // SAFETY: as above; the bridge was made with its stats target.
            let rc = unsafe {
                c_config::kp_config_set_stats_callback(config(cfg), stats_interval_ms as u32, stats_cb, userdata)
            };
            if rc != 0 {
                return Ok(rc);
            }
        }
        let mut raw = std::ptr::null_mut();
        // SAFETY: cfg is live, raw is writable.
        let rc = unsafe { c_pusher::kp_pusher_new(config(cfg), &mut raw) };
        if rc != 0 {
            return Ok(rc); // dropping the bridge deletes its global references
        }
        let handle = Box::into_raw(Box::new(JniPusher { raw, bridge })) as jlong;
        if let Err(e) = env.set_long_array_region(&out, 0, &[handle]) {
            // SAFETY: the handle was just made and never given out.
            drop_pusher(unsafe { Box::from_raw(handle as *mut JniPusher) });
            return Err(e);
        }
        Ok(0)
    })
}

// SAFETY: kp_pusher may be used and freed from any thread (the C header's thread rules); the
// bridge holds only thread-safe JNI handles (JavaVM, global references, method ids).
unsafe impl Send for JniPusher {}

fn drop_pusher(p: Box<JniPusher>) {
    if in_event_callback() {
        // close() from the listener: kp_pusher_free would hand the release to a helper thread and
        // return while callbacks may still run, and the bridge they use must outlive them. So
        // the whole release, bridge included, moves to a thread of its own.
        // Should the thread not start, the pusher leaks rather than being freed under a callback.
        let p = std::mem::ManuallyDrop::new(p);
        let _ = std::thread::Builder::new()
            .name("kitepush-jni-free".into())
            .spawn(move || (*std::mem::ManuallyDrop::into_inner(p)).release());
        return;
    }
    (*p).release();
}

impl JniPusher {
    fn release(self) {
        // SAFETY: raw came from kp_pusher_new; no call on it is in flight (the Java guard waited).
        unsafe { c_pusher::kp_pusher_free(self.raw) };
        // Only now, with no callback running or to come, can the listener's references go.
        drop(self.bridge);
    }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherFree(_: JNIEnv, _: JClass, handle: jlong) {
    let _ = boundary("pusherFree", || {
        if handle != 0 {
            // SAFETY: handle came from pusherNew; LivePusher.close frees it once, after the guard
            // has seen every other call return.
            drop_pusher(unsafe { Box::from_raw(handle as *mut JniPusher) });
        }
        Ok(0)
    });
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherStart(_: JNIEnv, _: JClass, handle: jlong) -> jint {
    // SAFETY: NULL or live (handle guard).
    unsafe { c_pusher::kp_pusher_start(pusher(handle)) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherStop(
    _: JNIEnv,
    _: JClass,
    handle: jlong,
    timeout_ms: jint,
) -> jint {
    // SAFETY: NULL or live (handle guard). Blocks up to about timeout_ms, holding no JNI resource.
    unsafe { c_pusher::kp_pusher_stop(pusher(handle), timeout_ms as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherGetState(_: JNIEnv, _: JClass, handle: jlong) -> jint {
    // SAFETY: NULL or live (handle guard).
    unsafe { c_pusher::kp_pusher_get_state(pusher(handle)) }
}

/// A float carried in a `long[]` slot: its bits, read back with `Float.intBitsToFloat`.
fn float_bits(f: f32) -> jlong {
    f.to_bits() as jlong
}

/// Slots of `stats_values`: `LivePusher.Stats.FIELDS`.
pub(crate) const STATS_FIELDS: usize = 45;

/// kp_stats in field order, after struct_size; the layout of `LivePusher.Stats` (floats as
/// their bits, see `float_bits`). Used by getStats and by the stats callback.
pub(crate) fn stats_values(s: &kp_stats) -> [jlong; STATS_FIELDS] {
    [
        s.state as jlong,
        s.video_frames_in as jlong,
        s.audio_frames_in as jlong,
        s.video_frames_encoded as jlong,
        s.audio_frames_encoded as jlong,
        s.video_frames_sent as jlong,
        s.audio_frames_sent as jlong,
        s.video_frames_dropped_encoder as jlong,
        s.frames_dropped_network as jlong,
        s.frames_rejected as jlong,
        s.bytes_sent as jlong,
        s.queue_bytes as jlong,
        s.uptime_ms as jlong,
        s.video_bitrate_kbps as jlong,
        s.audio_bitrate_kbps as jlong,
        s.queue_ms as jlong,
        s.reconnects as jlong,
        s.destination_count as jlong,
        s.url_index as jlong,
        float_bits(s.input_fps),
        float_bits(s.encoded_fps),
        float_bits(s.sent_fps),
        float_bits(s.congestion),
        s.target_video_kbps as jlong,
        s.target_audio_kbps as jlong,
        s.throughput_kbps as jlong,
        s.rtt_ms as jlong,
        s.video_frames_dropped_congestion as jlong,
        s.audio_frames_dropped_congestion as jlong,
        s.audio_gaps as jlong,
        s.video_frames_skipped_abr as jlong,
        s.cpu_time_ms as jlong,
        float_bits(s.encode_ms),
        s.fps_divisor as jlong,
        s.video_timestamps_adjusted as jlong,
        s.video_frames_lost_outage as jlong,
        s.audio_frames_lost_outage as jlong,
        s.messages_accepted as jlong,
        s.messages_sent as jlong,
        s.messages_dropped as jlong,
        s.encode_rung as jlong,
        s.encode_width as jlong,
        s.encode_height as jlong,
        float_bits(s.encode_fps),
        s.video_frames_skipped_ladder as jlong,
    ]
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherGetStats(
    env: JNIEnv,
    _: JClass,
    handle: jlong,
    out: JLongArray,
) -> jint {
    boundary("pusherGetStats", || {
        let mut s = kp_stats { struct_size: size_of::<kp_stats>() as u32, ..Default::default() };
        // SAFETY: NULL or live (handle guard); s is a full kp_stats.
        let rc = unsafe { c_pusher::kp_pusher_get_stats(pusher(handle), &mut s) };
        if rc != 0 {
            return Ok(rc);
        }
        let values = stats_values(&s);
        if out.is_null() || (env.get_array_length(&out)? as usize) < values.len() {
            return Ok(OUT_OF_BOUNDS);
        }
        env.set_long_array_region(&out, 0, &values)?;
        Ok(0)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherGetDestinationStats(
    env: JNIEnv,
    _: JClass,
    handle: jlong,
    destination: jint,
    out: JLongArray,
) -> jint {
    boundary("pusherGetDestinationStats", || {
        // SAFETY: all-zero is a valid kp_destination_stats (integers and floats only).
        let mut d: kp_destination_stats = unsafe { std::mem::zeroed() };
        d.struct_size = size_of::<kp_destination_stats>() as u32;
        // SAFETY: NULL or live (handle guard); d is a full kp_destination_stats.
        let rc = unsafe { c_pusher::kp_pusher_get_destination_stats(pusher(handle), destination as u32, &mut d) };
        if rc != 0 {
            return Ok(rc);
        }
        let values: [jlong; 34] = [
            d.state as jlong,
            d.url_index as jlong,
            d.video_bitrate_kbps as jlong,
            d.audio_bitrate_kbps as jlong,
            d.queue_ms as jlong,
            d.video_frames_sent as jlong,
            d.audio_frames_sent as jlong,
            d.bytes_sent as jlong,
            d.frames_dropped_network as jlong,
            d.queue_bytes as jlong,
            d.reconnects as jlong,
            d.outage_ms_total as jlong,
            d.throughput_kbps as jlong,
            d.rtt_ms as jlong,
            d.target_video_kbps as jlong,
            float_bits(d.congestion),
            d.video_frames_dropped_congestion as jlong,
            d.audio_frames_dropped_congestion as jlong,
            d.audio_gaps as jlong,
            d.packets_retransmitted as jlong,
            d.packets_lost as jlong,
            d.packets_dropped_late as jlong,
            d.send_buffer_ms as jlong,
            d.latency_ms as jlong,
            d.video_frames_lost_outage as jlong,
            d.audio_frames_lost_outage as jlong,
            d.outage_media_kept_ms as jlong,
            d.outage_media_lost_ms as jlong,
            d.last_catch_up_ms as jlong,
            d.catching_up as jlong,
            d.messages_sent as jlong,
            d.messages_dropped as jlong,
            d.bandwidth_estimate_kbps as jlong,
            d.keyframe_requests as jlong,
        ];
        if out.is_null() || (env.get_array_length(&out)? as usize) < values.len() {
            return Ok(OUT_OF_BOUNDS);
        }
        env.set_long_array_region(&out, 0, &values)?;
        Ok(0)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherPause(_: JNIEnv, _: JClass, handle: jlong, mode: jint) -> jint {
    // SAFETY: NULL or live (handle guard); unknown modes are refused by the C ABI.
    unsafe { c_pusher::kp_pusher_pause(pusher(handle), mode) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherResume(_: JNIEnv, _: JClass, handle: jlong) -> jint {
    // SAFETY: NULL or live (handle guard).
    unsafe { c_pusher::kp_pusher_resume(pusher(handle)) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherSetVideoBitrate(
    _: JNIEnv,
    _: JClass,
    handle: jlong,
    kbps: jint,
) -> jint {
    // SAFETY: NULL or live (handle guard). Non-negative (LivePusher checks).
    unsafe { c_pusher::kp_pusher_set_video_bitrate(pusher(handle), kbps as u32) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherRequestKeyframe(_: JNIEnv, _: JClass, handle: jlong) -> jint {
    // SAFETY: NULL or live (handle guard).
    unsafe { c_pusher::kp_pusher_request_keyframe(pusher(handle)) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherNetworkChanged(_: JNIEnv, _: JClass, handle: jlong) -> jint {
    // SAFETY: NULL or live (handle guard).
    unsafe { c_pusher::kp_pusher_network_changed(pusher(handle)) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherSetAudioMuted(
    _: JNIEnv,
    _: JClass,
    handle: jlong,
    muted: jboolean,
) -> jint {
    // SAFETY: NULL or live (handle guard).
    unsafe { c_pusher::kp_pusher_set_audio_muted(pusher(handle), muted != 0) }
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherStartRecording(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    path: JString,
) -> jint {
    boundary("pusherStartRecording", || {
        // SAFETY: NULL or live (handle guard); the string outlives the call.
        with_cstr(&mut env, &path, |p| unsafe { c_pusher::kp_pusher_start_recording(pusher(handle), p) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherStopRecording(_: JNIEnv, _: JClass, handle: jlong) -> jint {
    // SAFETY: NULL or live (handle guard). Blocks until the file is written, holding no JNI resource.
    unsafe { c_pusher::kp_pusher_stop_recording(pusher(handle)) }
}

// ---- media ---------------------------------------------------------------------------------

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushH264Array(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    data: JByteArray,
    offset: jint,
    len: jint,
    pts_us: jlong,
    dts_us: jlong,
) -> jint {
    boundary("pushH264Array", || {
        // SAFETY: NULL or live (handle guard); the bytes are readable during the call.
        with_bytes(&mut env, &data, offset, len, |p, n| unsafe {
            c_pusher::kp_pusher_push_h264(pusher(handle), p, n, pts_us, dts_us)
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushH264Buffer(
    env: JNIEnv,
    _: JClass,
    handle: jlong,
    data: JByteBuffer,
    pos: jint,
    len: jint,
    pts_us: jlong,
    dts_us: jlong,
) -> jint {
    boundary("pushH264Buffer", || {
        Ok(match buffer_range(&env, &data, pos, len)? {
            // SAFETY: NULL or live (handle guard); `len` bytes are readable at p.
            Some(p) => unsafe { c_pusher::kp_pusher_push_h264(pusher(handle), p, len as usize, pts_us, dts_us) },
            None => OUT_OF_BOUNDS,
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushHevcArray(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    data: JByteArray,
    offset: jint,
    len: jint,
    pts_us: jlong,
    dts_us: jlong,
) -> jint {
    boundary("pushHevcArray", || {
        // SAFETY: NULL or live (handle guard); the bytes are readable during the call.
        with_bytes(&mut env, &data, offset, len, |p, n| unsafe {
            c_pusher::kp_pusher_push_hevc(pusher(handle), p, n, pts_us, dts_us)
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushHevcBuffer(
    env: JNIEnv,
    _: JClass,
    handle: jlong,
    data: JByteBuffer,
    pos: jint,
    len: jint,
    pts_us: jlong,
    dts_us: jlong,
) -> jint {
    boundary("pushHevcBuffer", || {
        Ok(match buffer_range(&env, &data, pos, len)? {
            // SAFETY: NULL or live (handle guard); `len` bytes are readable at p.
            Some(p) => unsafe { c_pusher::kp_pusher_push_hevc(pusher(handle), p, len as usize, pts_us, dts_us) },
            None => OUT_OF_BOUNDS,
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_acquireVideoSlot(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    out: JLongArray,
    planes: JObjectArray,
) -> jint {
    boundary("acquireVideoSlot", || {
        if out.is_null() || planes.is_null() || env.get_array_length(&out)? < 5 || env.get_array_length(&planes)? < 3 {
            return Ok(OUT_OF_BOUNDS);
        }
        let mut slot = std::ptr::null_mut();
        let mut layout = kp_video_slot_layout {
            struct_size: size_of::<kp_video_slot_layout>() as u32,
            width: 0,
            height: 0,
            planes: [std::ptr::null_mut(); 3],
            strides: [0; 3],
            plane_sizes: [0; 3],
        };
        // SAFETY: NULL or live (handle guard); slot and layout are writable locals.
        let rc = unsafe { c_slot::kp_pusher_acquire_video_slot(pusher(handle), &mut slot, &mut layout) };
        if rc != 0 {
            return Ok(rc);
        }
        let made = (|| -> Result<(), jni::errors::Error> {
            for (i, (&p, &len)) in layout.planes.iter().zip(&layout.plane_sizes).enumerate() {
                // SAFETY: the slot's plane: `len` writable bytes until the slot is submitted or
                // freed, which the Java VideoSlot's contract ties its buffers to.
                let buf = unsafe { env.new_direct_byte_buffer(p, len) }?;
                env.set_object_array_element(&planes, i as i32, buf)?;
            }
            let values = [
                slot as jlong,
                layout.width.into(),
                layout.height.into(),
                layout.strides[0].into(),
                layout.strides[1].into(),
            ];
            env.set_long_array_region(&out, 0, &values)
        })();
        if let Err(e) = made {
            // SAFETY: the slot just acquired, given back once.
            unsafe { c_slot::kp_video_slot_free(slot) };
            return Err(e);
        }
        Ok(0)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_submitVideoSlot(
    _: JNIEnv,
    _: JClass,
    handle: jlong,
    slot: jlong,
    pts_us: jlong,
) -> jint {
    boundary("submitVideoSlot", || {
        // SAFETY: NULL or live (handle guard); slot came from acquireVideoSlot and is given back
        // once (VideoSlot.take).
        Ok(unsafe { c_slot::kp_pusher_submit_video_slot(pusher(handle), slot as *mut kp_video_slot, pts_us) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_freeVideoSlot(_: JNIEnv, _: JClass, slot: jlong) {
    boundary("freeVideoSlot", || {
        // SAFETY: slot came from acquireVideoSlot and is given back once (VideoSlot.take).
        unsafe { c_slot::kp_video_slot_free(slot as *mut kp_video_slot) };
        Ok(0)
    });
}

/// kp_pusher_push_aac or kp_pusher_push_opus: one buffer of encoded audio and its time.
type PushEncodedAudio = unsafe extern "C" fn(*mut kp_pusher, *const u8, usize, i64) -> kp_result;

/// `push` of `len` bytes of a Java array from `offset`.
fn push_audio_array(
    env: &mut JNIEnv,
    handle: jlong,
    data: &JByteArray,
    offset: jint,
    len: jint,
    pts_us: jlong,
    push: PushEncodedAudio,
) -> GlueResult {
    // SAFETY: NULL or live (handle guard); the bytes are readable during the call.
    with_bytes(env, data, offset, len, |p, n| unsafe { push(pusher(handle), p, n, pts_us) })
}

/// `push` of `len` bytes of a direct buffer from `pos`.
fn push_audio_buffer(
    env: &JNIEnv,
    handle: jlong,
    data: &JByteBuffer,
    pos: jint,
    len: jint,
    pts_us: jlong,
    push: PushEncodedAudio,
) -> GlueResult {
    Ok(match buffer_range(env, data, pos, len)? {
        // SAFETY: NULL or live (handle guard); `len` bytes are readable at p.
        Some(p) => unsafe { push(pusher(handle), p, len as usize, pts_us) },
        None => OUT_OF_BOUNDS,
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushAacArray(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    data: JByteArray,
    offset: jint,
    len: jint,
    pts_us: jlong,
) -> jint {
    boundary("pushAacArray", || {
        push_audio_array(&mut env, handle, &data, offset, len, pts_us, c_pusher::kp_pusher_push_aac)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushAacBuffer(
    env: JNIEnv,
    _: JClass,
    handle: jlong,
    data: JByteBuffer,
    pos: jint,
    len: jint,
    pts_us: jlong,
) -> jint {
    boundary("pushAacBuffer", || push_audio_buffer(&env, handle, &data, pos, len, pts_us, c_pusher::kp_pusher_push_aac))
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushOpusArray(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    data: JByteArray,
    offset: jint,
    len: jint,
    pts_us: jlong,
) -> jint {
    boundary("pushOpusArray", || {
        push_audio_array(&mut env, handle, &data, offset, len, pts_us, c_pusher::kp_pusher_push_opus)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushOpusBuffer(
    env: JNIEnv,
    _: JClass,
    handle: jlong,
    data: JByteBuffer,
    pos: jint,
    len: jint,
    pts_us: jlong,
) -> jint {
    boundary("pushOpusBuffer", || {
        push_audio_buffer(&env, handle, &data, pos, len, pts_us, c_pusher::kp_pusher_push_opus)
    })
}

/// Samples push_audio will read for `frames` frames, or None when the pusher has no audio (the C
/// ABI then refuses the call before reading anything) or the handle is 0.
fn pcm_samples(handle: jlong, frames: jint) -> Option<usize> {
    let p = pusher(handle);
    // SAFETY: NULL or live (handle guard).
    let channels = unsafe { p.as_ref() }?.channels()?;
    Some((frames.max(0) as usize).saturating_mul(channels))
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushAudioArray(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    samples: JShortArray,
    frames_per_channel: jint,
    pts_us: jlong,
) -> jint {
    boundary("pushAudioArray", || {
        if frames_per_channel < 0 {
            return Ok(OUT_OF_BOUNDS);
        }
        if samples.is_null() {
            // SAFETY: NULL or live (handle guard); the C ABI refuses the NULL samples.
            return Ok(unsafe {
                c_pusher::kp_pusher_push_audio(pusher(handle), null(), frames_per_channel as usize, pts_us)
            });
        }
        let total = env.get_array_length(&samples)? as usize;
        if pcm_samples(handle, frames_per_channel).is_some_and(|n| n > total) {
            return Ok(OUT_OF_BOUNDS);
        }
        // SAFETY: no JNI call inside the critical region (push_audio copies and returns at once).
        let elems = unsafe { env.get_array_elements_critical(&samples, ReleaseMode::NoCopyBack) }?;
        // SAFETY: NULL or live (handle guard); frames * channels samples are in the array.
        Ok(unsafe {
            c_pusher::kp_pusher_push_audio(pusher(handle), elems.as_ptr(), frames_per_channel as usize, pts_us)
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushAudioBuffer(
    env: JNIEnv,
    _: JClass,
    handle: jlong,
    pcm: JByteBuffer,
    pos: jint,
    len: jint,
    frames_per_channel: jint,
    pts_us: jlong,
) -> jint {
    boundary("pushAudioBuffer", || {
        if frames_per_channel < 0 {
            return Ok(OUT_OF_BOUNDS);
        }
        let Some(p) = buffer_range(&env, &pcm, pos, len)? else { return Ok(OUT_OF_BOUNDS) };
        if pcm_samples(handle, frames_per_channel).is_some_and(|n| n.saturating_mul(2) > len as usize) {
            return Ok(OUT_OF_BOUNDS);
        }
        // SAFETY: NULL or live (handle guard); the samples lie within the buffer's range. The C ABI
        // checks the 2-byte alignment.
        Ok(unsafe { c_pusher::kp_pusher_push_audio(pusher(handle), p.cast(), frames_per_channel as usize, pts_us) })
    })
}

/// Calls `f` with a kp_video_frame of up to three planes inside one array: plane i starts at
/// offsets[i] and may read to the end of the array (its plane size). `f` is a C ABI call that
/// copies the frame and returns at once (it runs inside the array's critical region).
#[allow(clippy::too_many_arguments)]
fn with_array_frame(
    env: &mut JNIEnv,
    format: jint,
    width: jint,
    height: jint,
    data: &JByteArray,
    planes: jint,
    offsets: [jint; 3],
    strides: [jint; 3],
    f: impl FnOnce(&kp_video_frame) -> kp_result,
) -> GlueResult {
    let mut frame = kp_video_frame {
        format,
        width: width as u32,
        height: height as u32,
        planes: [null(); 3],
        strides: [0; 3],
        plane_sizes: [0; 3],
    };
    if data.is_null() {
        // The C ABI refuses the NULL planes.
        return Ok(f(&frame));
    }
    let total = env.get_array_length(data)? as usize;
    let planes = planes.clamp(0, 3) as usize;
    if offsets[..planes].iter().any(|&o| !in_bounds(o, 0, total)) {
        return Ok(OUT_OF_BOUNDS);
    }
    // SAFETY: no JNI call inside the critical region (`f` copies and returns at once).
    let elems = unsafe { env.get_array_elements_critical(data, ReleaseMode::NoCopyBack) }?;
    let base = elems.as_ptr().cast::<u8>().cast_const();
    for i in 0..planes {
        // SAFETY: offsets[i] <= the array's length.
        frame.planes[i] = unsafe { base.add(offsets[i] as usize) };
        frame.plane_sizes[i] = total - offsets[i] as usize;
        frame.strides[i] = strides[i] as u32;
    }
    Ok(f(&frame))
}

/// Calls `f` with a kp_video_frame whose planes are direct buffers' ranges (null buffer: unused
/// plane); `f` is a C ABI call that copies the frame.
fn with_buffer_frame(
    env: &JNIEnv,
    format: jint,
    width: jint,
    height: jint,
    planes: [(&JByteBuffer, jint, jint, jint); 3],
    f: impl FnOnce(&kp_video_frame) -> kp_result,
) -> GlueResult {
    let mut frame = kp_video_frame {
        format,
        width: width as u32,
        height: height as u32,
        planes: [null(); 3],
        strides: [planes[0].3 as u32, planes[1].3 as u32, planes[2].3 as u32],
        plane_sizes: [0; 3],
    };
    for (i, (buf, pos, len, _)) in planes.into_iter().enumerate() {
        if buf.is_null() {
            continue;
        }
        match buffer_range(env, buf, pos, len)? {
            Some(p) => {
                frame.planes[i] = p;
                frame.plane_sizes[i] = len as usize;
            }
            None => return Ok(OUT_OF_BOUNDS),
        }
    }
    Ok(f(&frame))
}

/// kp_pusher_push_video with up to three planes inside one array (see `with_array_frame`).
#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushVideoArray(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    format: jint,
    width: jint,
    height: jint,
    data: JByteArray,
    planes: jint,
    offset0: jint,
    stride0: jint,
    offset1: jint,
    stride1: jint,
    offset2: jint,
    stride2: jint,
    pts_us: jlong,
) -> jint {
    boundary("pushVideoArray", || {
        let (offsets, strides) = ([offset0, offset1, offset2], [stride0, stride1, stride2]);
        with_array_frame(&mut env, format, width, height, &data, planes, offsets, strides, |frame| {
            // SAFETY: NULL or live (handle guard); each plane pointer has plane_sizes[i] readable bytes.
            unsafe { c_pusher::kp_pusher_push_video(pusher(handle), frame, pts_us) }
        })
    })
}

/// kp_pusher_push_video with each plane a direct buffer's range (null buffer: unused plane).
#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pushVideoBuffers(
    env: JNIEnv,
    _: JClass,
    handle: jlong,
    format: jint,
    width: jint,
    height: jint,
    plane0: JByteBuffer,
    pos0: jint,
    len0: jint,
    stride0: jint,
    plane1: JByteBuffer,
    pos1: jint,
    len1: jint,
    stride1: jint,
    plane2: JByteBuffer,
    pos2: jint,
    len2: jint,
    stride2: jint,
    pts_us: jlong,
) -> jint {
    boundary("pushVideoBuffers", || {
        let planes = [(&plane0, pos0, len0, stride0), (&plane1, pos1, len1, stride1), (&plane2, pos2, len2, stride2)];
        with_buffer_frame(&env, format, width, height, planes, |frame| {
            // SAFETY: NULL or live (handle guard); each plane pointer has plane_sizes[i] readable bytes.
            unsafe { c_pusher::kp_pusher_push_video(pusher(handle), frame, pts_us) }
        })
    })
}

/// kp_pusher_set_pause_image with the planes inside one array (as pushVideoArray).
#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_setPauseImageArray(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    format: jint,
    width: jint,
    height: jint,
    data: JByteArray,
    planes: jint,
    offset0: jint,
    stride0: jint,
    offset1: jint,
    stride1: jint,
    offset2: jint,
    stride2: jint,
) -> jint {
    boundary("setPauseImageArray", || {
        let (offsets, strides) = ([offset0, offset1, offset2], [stride0, stride1, stride2]);
        with_array_frame(&mut env, format, width, height, &data, planes, offsets, strides, |frame| {
            // SAFETY: NULL or live (handle guard); each plane pointer has plane_sizes[i] readable bytes.
            unsafe { c_pusher::kp_pusher_set_pause_image(pusher(handle), frame) }
        })
    })
}

/// kp_pusher_set_pause_image with each plane a direct buffer's range (as pushVideoBuffers).
#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_setPauseImageBuffers(
    env: JNIEnv,
    _: JClass,
    handle: jlong,
    format: jint,
    width: jint,
    height: jint,
    plane0: JByteBuffer,
    pos0: jint,
    len0: jint,
    stride0: jint,
    plane1: JByteBuffer,
    pos1: jint,
    len1: jint,
    stride1: jint,
    plane2: JByteBuffer,
    pos2: jint,
    len2: jint,
    stride2: jint,
) -> jint {
    boundary("setPauseImageBuffers", || {
        let planes = [(&plane0, pos0, len0, stride0), (&plane1, pos1, len1, stride1), (&plane2, pos2, len2, stride2)];
        with_buffer_frame(&env, format, width, height, planes, |frame| {
            // SAFETY: NULL or live (handle guard); each plane pointer has plane_sizes[i] readable bytes.
            unsafe { c_pusher::kp_pusher_set_pause_image(pusher(handle), frame) }
        })
    })
}
