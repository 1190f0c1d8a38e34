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
    kind,
    __struct__,
    __exception__,
    emily_memory_pressure,
    gc_pressure,
    external_aliasing,
    malloc_mmap_threshold,
    // dtypes
    bool_ = "bool", u8, u16, u32, u64, s8, s16, s32, s64, f16, bf16, f32, f64, c64,
}

/// A map with atom keys, from `(name, value)` pairs.
pub fn atom_map<'a, K: AsRef<str>, V: rustler::Encoder>(
    env: rustler::Env<'a>,
    pairs: impl IntoIterator<Item = (K, V)>,
) -> rustler::NifResult<rustler::Term<'a>> {
    let mut map = rustler::Term::map_new(env);
    for (k, v) in pairs {
        map = map.map_put(rustler::Atom::from_str(env, k.as_ref())?, v)?;
    }
    Ok(map)
}
