//! Events from the SDK's callback thread to a Java `LivePusher.Listener`.
//!
//! The bridge is the `userdata` of the C event callback: it lives in the Java-side handle and is
//! dropped only after `kp_pusher_free` has returned, when no callback can run any more. The SDK
//! calls back on one thread per pusher, without holding any lock; this module takes none either,
//! so the listener may call back into the pusher (push, getStats) from `onEvent`.
//!
//! The stats callback (`kp_config_set_stats_callback`) has the same bridge as its userdata and
//! runs on the same SDK thread, never at the same time as an event, so it reuses all of the above.

use crate::ffi::event::kp_event;
use crate::ffi::pusher::kp_stats;
use jni::objects::{GlobalRef, JClass, JMethodID, JObject, JValue};
use jni::signature::{Primitive, ReturnType};
use jni::sys::jvalue;
use jni::{JNIEnv, JavaVM};
use std::ffi::{c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};

/// Global references this glue holds right now. Test-visible (`Native.liveGlobalRefs()`): the host
/// suite checks it returns to its start value after 1000 create/close cycles.
static LIVE_GLOBAL_REFS: AtomicI64 = AtomicI64::new(0);

pub(crate) fn live_global_refs() -> i64 {
    LIVE_GLOBAL_REFS.load(Ordering::SeqCst)
}

/// A JNI global reference that is counted while it exists.
struct Counted(GlobalRef);

impl Counted {
    fn new(env: &JNIEnv, obj: &JObject) -> jni::errors::Result<Counted> {
        let global = env.new_global_ref(obj)?;
        LIVE_GLOBAL_REFS.fetch_add(1, Ordering::SeqCst);
        Ok(Counted(global))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // GlobalRef's own Drop deletes the reference (attaching the thread if it has to).
        LIVE_GLOBAL_REFS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the callback thread needs to reach the listener: all of it resolved on the Java thread
/// that created the pusher, because a native thread attached later sees only the system class
/// loader (on Android it could not find the app's classes).
pub(crate) struct ListenerBridge {
    vm: JavaVM,
    listener: Counted,
    event_class: Counted,
    event_ctor: JMethodID,
    on_event: JMethodID,
    /// Only when the app asked for periodic stats: the class costs a global reference, which
    /// listeners without stats do not pay.
    stats: Option<StatsTarget>,
}

struct StatsTarget {
    class: Counted,
    ctor: JMethodID,
    on_stats: JMethodID,
}

const EVENT_CLASS: &str = "dev/kitepush/LivePusher$Event";
const EVENT_CTOR_SIG: &str = "(IILjava/lang/String;JIJJJJ)V";
const ON_EVENT_SIG: &str = "(Ldev/kitepush/LivePusher$Event;)V";
const STATS_CLASS: &str = "dev/kitepush/LivePusher$Stats";
const STATS_CTOR_SIG: &str = "([J)V";
const ON_STATS_SIG: &str = "(Ldev/kitepush/LivePusher$Stats;)V";

impl ListenerBridge {
    /// `with_stats`: the bridge will also receive the stats callback (`on_stats`).
    pub(crate) fn new(env: &mut JNIEnv, listener: &JObject, with_stats: bool) -> jni::errors::Result<ListenerBridge> {
        let vm = env.get_java_vm()?;
        let class = env.find_class(EVENT_CLASS)?;
        let event_ctor = env.get_method_id(&class, "<init>", EVENT_CTOR_SIG)?;
        let listener_class = env.get_object_class(listener)?;
        let on_event = env.get_method_id(&listener_class, "onEvent", ON_EVENT_SIG)?;
        let stats = if with_stats {
            let stats_class = env.find_class(STATS_CLASS)?;
            let ctor = env.get_method_id(&stats_class, "<init>", STATS_CTOR_SIG)?;
            let on_stats = env.get_method_id(&listener_class, "onStats", ON_STATS_SIG)?;
            Some(StatsTarget { class: Counted::new(env, &stats_class)?, ctor, on_stats })
        } else {
            None
        };
        let event_class = Counted::new(env, &class)?;
        let listener = Counted::new(env, listener)?;
        Ok(ListenerBridge { vm, listener, event_class, event_ctor, on_event, stats })
    }

    fn deliver_stats(&self, s: &kp_stats) -> jni::errors::Result<()> {
        let Some(target) = &self.stats else { return Ok(()) };
        // Attached once, as for events (the same SDK thread).
        let mut env = self.vm.attach_current_thread_as_daemon()?;
        let values = super::stats_values(s);
        let result = env.with_local_frame(4, |env| -> jni::errors::Result<()> {
            let array = env.new_long_array(values.len() as i32)?;
            env.set_long_array_region(&array, 0, &values)?;
            let class = <&JClass>::from(target.class.0.as_obj());
            // SAFETY: the constructor and onStats ids were looked up with exactly these signatures.
            let stats = unsafe { env.new_object_unchecked(class, target.ctor, &[JValue::Object(&array).as_jni()]) }?;
            unsafe {
                env.call_method_unchecked(
                    self.listener.0.as_obj(),
                    target.on_stats,
                    ReturnType::Primitive(Primitive::Void),
                    &[JValue::Object(&stats).as_jni()],
                )
            }?;
            Ok(())
        });
        Self::clear_exception(&mut env, result)
    }

    /// A listener that throws must not break the SDK thread nor leave an exception pending
    /// into the next call: it is printed (as an uncaught exception would be) and cleared.
    fn clear_exception(env: &mut JNIEnv, result: jni::errors::Result<()>) -> jni::errors::Result<()> {
        if env.exception_check()? {
            env.exception_describe()?;
            env.exception_clear()?;
        }
        match result {
            Err(jni::errors::Error::JavaException) => Ok(()),
            other => other,
        }
    }

    fn deliver(&self, ev: &kp_event) -> jni::errors::Result<()> {
        // Attached once: the first event attaches the SDK's callback thread as a daemon (it must
        // not keep the app's JVM alive) and it stays attached until the thread exits; later
        // events find it attached.
        let mut env = self.vm.attach_current_thread_as_daemon()?;
        let result = env.with_local_frame(4, |env| -> jni::errors::Result<()> {
            // SAFETY: the C ABI hands a valid NUL-terminated message for the duration of the call.
            let message = unsafe { CStr::from_ptr(ev.message) }.to_string_lossy();
            let message = env.new_string(message)?;
            let args: [jvalue; 9] = [
                JValue::Int(ev.kind).as_jni(),
                JValue::Int(ev.code).as_jni(),
                JValue::Object(&message).as_jni(),
                JValue::Long(ev.timestamp_ms as i64).as_jni(),
                JValue::Int(ev.destination as i32).as_jni(),
                JValue::Long(ev.value).as_jni(),
                JValue::Long(ev.value2).as_jni(),
                JValue::Long(ev.value3).as_jni(),
                JValue::Long(ev.value4).as_jni(),
            ];
            let class = <&JClass>::from(self.event_class.0.as_obj());
            // SAFETY: the constructor and onEvent ids were looked up with exactly these signatures.
            let event = unsafe { env.new_object_unchecked(class, self.event_ctor, &args) }?;
            unsafe {
                env.call_method_unchecked(
                    self.listener.0.as_obj(),
                    self.on_event,
                    ReturnType::Primitive(Primitive::Void),
                    &[JValue::Object(&event).as_jni()],
                )
            }?;
            Ok(())
        });
        Self::clear_exception(&mut env, result)
    }
}

/// The C event callback; `userdata` is a live `ListenerBridge` (see the module comment).
pub(crate) unsafe extern "C" fn on_event(userdata: *mut c_void, ev: *const kp_event) {
    // A panic must not unwind into the SDK's thread (it would abort the app).
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: userdata is the bridge installed with this callback and outlives kp_pusher_free;
        // ev is valid during the call.
        let (bridge, ev) = unsafe { (&*userdata.cast::<ListenerBridge>(), &*ev) };
        if let Err(e) = bridge.deliver(ev) {
            log::error!("kitepush JNI: event {} not delivered to the Java listener: {e}", ev.kind);
        }
    }));
}

/// The C stats callback; `userdata` is a live `ListenerBridge` made with stats (see the module
/// comment).
pub(crate) unsafe extern "C" fn on_stats(userdata: *mut c_void, stats: *const kp_stats) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: userdata is the bridge installed with this callback and outlives kp_pusher_free;
        // stats is valid during the call.
        let (bridge, stats) = unsafe { (&*userdata.cast::<ListenerBridge>(), &*stats) };
        if let Err(e) = bridge.deliver_stats(stats) {
            log::error!("kitepush JNI: stats not delivered to the Java listener: {e}");
        }
    }));
}
