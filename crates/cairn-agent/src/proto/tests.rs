use super::*;

fn roundtrip(f: &Frame) -> Frame {
    let bytes = f.encode();
    let mut r = &bytes[..];
    let back = read_frame(&mut r).unwrap().unwrap();
    assert!(r.is_empty());
    back
}

#[test]
fn an_init_never_shows_a_secret_in_a_debug_print() {
    let init = Message::Init {
        clock_ms: None,
        env: vec![],
        hostname: Some("sbx-00000001".into()),
        machine_id: None,
        entropy: None,
        secrets: vec![Secret {
            name: "API_KEY".into(),
            hex: "68756e74657232".into(),
        }],
    };
    let f = Frame::control(0, &init);
    assert_eq!(f.message().unwrap(), init);
    let shown = format!("{init:?}");
    assert!(
        shown.contains("API_KEY") && !shown.contains("68756e"),
        "{shown}"
    );
}

#[test]
fn frames_read_back_as_written() {
    let spawn = Message::Spawn {
        cmd: vec!["sh".into(), "-c".into(), "echo hi".into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        user: None,
        tty: Some(TtySize { rows: 24, cols: 80 }),
        stdin: true,
        detach: false,
        secret_env: vec!["API_KEY".into()],
    };
    let f = Frame::control(7, &spawn);
    let back = roundtrip(&f);
    assert_eq!(back, f);
    assert_eq!(back.message().unwrap(), spawn);
    let d = Frame::data(Kind::Stdout, 7, b"hello\n".to_vec());
    assert_eq!(roundtrip(&d), d);
    let empty = Frame::data(Kind::Stdin, 1, Vec::new());
    assert_eq!(roundtrip(&empty), empty);
}

#[test]
fn messages_are_tagged_json() {
    let f = Frame::control(
        0,
        &Message::Exit {
            code: Some(3),
            signal: None,
        },
    );
    assert_eq!(
        String::from_utf8(f.payload.clone()).unwrap(),
        r#"{"type":"exit","code":3}"#
    );
    let m: Message = serde_json::from_str(r#"{"type":"ps-reply","processes":[]}"#).unwrap();
    assert_eq!(m, Message::PsReply { processes: vec![] });
}

#[test]
fn a_clean_end_between_frames_is_none() {
    let mut r: &[u8] = &[];
    assert!(read_frame(&mut r).unwrap().is_none());
}

#[test]
fn an_oversize_length_is_refused_before_any_allocation() {
    let mut bytes = u32::MAX.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 0, 1]);
    let mut r = &bytes[..];
    assert!(matches!(
        read_frame(&mut r),
        Err(ProtoError::TooLarge(u32::MAX))
    ));
    let mut just_over = (MAX_PAYLOAD + 1).to_be_bytes().to_vec();
    just_over.extend_from_slice(&[2, 0, 0, 0, 1]);
    let mut r = &just_over[..];
    assert!(matches!(read_frame(&mut r), Err(ProtoError::TooLarge(_))));
}

#[test]
fn an_unknown_kind_is_refused() {
    let mut bytes = 0u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[9, 0, 0, 0, 1]);
    let mut r = &bytes[..];
    assert!(matches!(
        read_frame(&mut r),
        Err(ProtoError::UnknownKind(9))
    ));
}

#[test]
fn truncated_frames_are_errors_not_panics() {
    let f = Frame::data(Kind::Stdout, 3, b"abcdef".to_vec()).encode();
    for cut in 1..f.len() {
        let mut r = &f[..cut];
        assert!(read_frame(&mut r).is_err(), "cut at {cut}");
    }
}

#[test]
fn bad_json_and_data_frames_are_not_messages() {
    let f = Frame {
        kind: Kind::Control,
        channel: 0,
        payload: b"{\"type\":\"nope\"}".to_vec(),
    };
    assert!(matches!(f.message(), Err(ProtoError::BadMessage(_))));
    let f = Frame {
        kind: Kind::Control,
        channel: 0,
        payload: vec![0xff, 0xfe],
    };
    assert!(f.message().is_err());
    assert!(Frame::data(Kind::Stdout, 0, b"{}".to_vec())
        .message()
        .is_err());
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap fuzz: every prefix of a pseudo-random stream parses or fails cleanly.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0xff) as u8
        })
        .collect();
    for start in 0..64 {
        let mut r = &bytes[start..];
        while let Ok(Some(f)) = read_frame(&mut r) {
            let _ = f.message();
        }
    }
}
