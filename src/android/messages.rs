//! JNI glue of the timed messages (issue 15): `LivePusher.sendMessage` and the config setters.

use super::{boundary, config, optional_cstring, pusher, with_bytes};
use crate::ffi::error::set_last_error;
use crate::ffi::messages as c_messages;
use crate::ResultCode;
use jni::objects::{JByteArray, JClass, JString};
use jni::sys::{jint, jlong};
use jni::JNIEnv;
use std::ptr::null;

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_pusherSendMessage(
    mut env: JNIEnv,
    _: JClass,
    handle: jlong,
    data: JByteArray,
    offset: jint,
    len: jint,
    flags: jint,
) -> jint {
    boundary("pusherSendMessage", || {
        // SAFETY: NULL or live (handle guard); the bytes are readable during the call, which
        // copies them and does not block.
        with_bytes(&mut env, &data, offset, len, |p, n| unsafe {
            c_messages::kp_pusher_send_message(pusher(handle), p, n, flags as u32)
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetMessageUuid(
    env: JNIEnv,
    _: JClass,
    cfg: jlong,
    uuid: JByteArray,
) -> jint {
    boundary("configSetMessageUuid", || {
        if uuid.is_null() {
            // SAFETY: cfg is live; NULL restores the default.
            return Ok(unsafe { c_messages::kp_config_set_message_uuid(config(cfg), null()) });
        }
        let bytes = env.convert_byte_array(&uuid)?;
        let Ok(u) = <[u8; 16]>::try_from(bytes.as_slice()) else {
            set_last_error("a message UUID has 16 bytes");
            return Ok(ResultCode::KP_ERR_INVALID_ARGUMENT as jint);
        };
        // SAFETY: cfg is live; u is 16 readable bytes.
        Ok(unsafe { c_messages::kp_config_set_message_uuid(config(cfg), u.as_ptr()) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetMessageAmfName(
    mut env: JNIEnv,
    _: JClass,
    cfg: jlong,
    name: JString,
) -> jint {
    boundary("configSetMessageAmfName", || {
        let Ok(name) = optional_cstring(&mut env, &name)? else {
            set_last_error("the name contains a NUL character");
            return Ok(ResultCode::KP_ERR_INVALID_ARGUMENT as jint);
        };
        let ptr = name.as_ref().map_or(null(), |c| c.as_ptr());
        // SAFETY: cfg is live; ptr is NULL or a string that outlives the call.
        Ok(unsafe { c_messages::kp_config_set_message_amf_name(config(cfg), ptr) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_kitepush_Native_configSetCaptureTimestamps(
    _: JNIEnv,
    _: JClass,
    cfg: jlong,
    mode: jint,
) -> jint {
    // SAFETY: cfg is live (the builder applies settings to the config it owns).
    unsafe { c_messages::kp_config_set_capture_timestamps(config(cfg), mode) }
}
