//! Compiles `proto/*.proto` without `protoc`: protox parses them into a descriptor set,
//! tonic-prost-build writes the prost messages (and, with feature `grpc`, tonic services),
//! and pbjson-build writes serde impls that speak etcd's gateway JSON.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/kv.proto",
    "proto/auth.proto",
    "proto/rpc.proto",
    "proto/v3lock.proto",
    "proto/v3election.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let grpc = env::var_os("CARGO_FEATURE_GRPC").is_some();

    let mut compiler = protox::Compiler::new(["proto"])?;
    // Source info carries the proto comments into the generated docs.
    compiler.include_source_info(true).open_files(PROTOS)?;
    let fds = compiler.file_descriptor_set();
    let descriptor_bytes = compiler.encode_file_descriptor_set();

    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        .build_transport(grpc)
        // Smaller first buffers than tonic's 8 KiB (src/codec.rs).
        .codec_path("crate::codec::SmallBuffers")
        .emit_rerun_if_changed(false)
        .out_dir(&out_dir)
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .out_dir(&out_dir)
        // The gateway writes the names as spelled in the proto (`prev_kv`, `ID`, `grantedTTL`);
        // parsing still takes lowerCamel too.
        .preserve_proto_field_names()
        // etcd's gateway ignores fields it does not know.
        .ignore_unknown_fields()
        .build(&[
            ".mvccpb",
            ".authpb",
            ".etcdserverpb",
            ".v3lockpb",
            ".v3electionpb",
        ])?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
