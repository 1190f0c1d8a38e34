rustler::atoms! {
    ok,
    error,
    nil,
    true_ = "true",
    false_ = "false",
    argument,
    runtime,
    queue_full,
    closed,
    cpu,
    gpu,
    message,
    __struct__,
    __exception__,
    // dtypes
    bool_ = "bool", u8, u16, u32, u64, s8, s16, s32, s64, f16, bf16, f32, f64, c64,
}
