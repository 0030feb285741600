"""The classifier on conflicting evidence, and the cross-flow roles it is fed."""

from __future__ import annotations

from agent.classify import Claim, claim_of, classify, weight_of
from agent.conversations import Conversation
from agent.endpoints import Endpoint
from agent.evidence import Evidence
from agent.inventory import build_devices, build_groups, group_label
from agent.roles import infer_roles


def claim(kind: str, value: str, confidence: float, count: int = 1) -> Claim:
    made = claim_of(kind, value, confidence, f"test {kind}", count)
    assert made is not None
    return made


def test_dicom_manufacturer_outweighs_a_medical_oui() -> None:
    result = classify(
        [
            Claim("vendor", "Philips", 0.5, "oui.medical", "curated medical OUI table"),
            claim("dicom.vendor", "GE Healthcare", 0.8),
        ]
    )
    assert result.value("vendor") == "GE Healthcare"
    (why,) = result.explain()["vendor"]["evidence"]
    assert why["kind"] == "dicom.vendor"


def test_independent_protocols_agreeing_beat_one_stronger_claim() -> None:
    result = classify(
        [
            claim("hl7.vendor", "Philips", 0.6),
            claim("lldp.vendor", "Philips", 0.6),
            claim("dicom.vendor", "Siemens", 0.8),
        ]
    )
    assert result.value("vendor") == "Philips"
    assert result.fields["vendor"].score > 0.8


def test_repeats_of_one_evidence_kind_do_not_add_up() -> None:
    """A gateway sending the same claim a thousand times is still one witness."""
    repeated = [claim("http.vendor", "Acme", 0.5) for _ in range(50)]
    result = classify([*repeated, claim("dicom.vendor", "SIEMENS", 0.6)])
    assert result.value("vendor") == "Siemens Healthineers"  # one spelling per company


def test_toolkit_uid_is_evidence_not_a_vendor_claim() -> None:
    assert claim_of("dicom.toolkit", "DCMTK", 0.9, "x", 1) is None
    assert claim_of("dicom.implementation_class_uid", "1.2.276.0.7230010.3", 1.0, "x", 1) is None


def test_unknown_device_type_words_are_ignored_and_aliases_map() -> None:
    assert claim_of("x.device_type", "toaster", 1.0, "x", 1) is None
    assert claim("dicom.device_type", "US", 0.6).value == "ultrasound"


def test_generic_modality_sharpens_to_the_specific_one() -> None:
    generic = claim("dicom.device_type", "imaging-modality", 0.4)
    assert classify([generic]).value("device_type") == "imaging-modality"
    sharper = classify([generic, claim("dicom.device_type", "ct", 0.3)])
    assert sharper.value("device_type") == "ct"


def test_case_and_spacing_variants_are_one_candidate() -> None:
    result = classify(
        [
            claim("hl7.model", "IntelliVue  MX800", 0.8),
            claim("dicom.model", "intellivue mx800", 0.5),
        ]
    )
    assert result.value("model") == "IntelliVue  MX800"
    assert len(result.fields["model"].evidence) == 2


def test_weights_come_from_the_data_file() -> None:
    assert weight_of("dicom.vendor") == 1.0
    assert weight_of("tcp.os_family") < weight_of("lldp.model")


def endpoint(ident: str, ip: bytes, mac: str | None = None, router: bool = False) -> Endpoint:
    import ipaddress

    return Endpoint(
        id=ident,
        mac=mac,
        ips=[str(ipaddress.ip_address(ip))],
        vlans=[20],
        first_seen=1.0,
        last_seen=2.0,
        flows=1,
        is_router=router,
        ip_keys=[(20, ip)],
    )


def evidence(host: str, kind: str, value: str, confidence: float = 1.0) -> Evidence:
    return Evidence(20, host, kind, value, f"test {kind}", 1.0, 2.0, 1, confidence, None)


def test_router_mac_never_lends_its_vendor_to_ips_behind_it() -> None:
    router = endpoint(
        "mac:00:09:fb:00:00:01", b"\x0a\x14\x00\x01", "00:09:fb:00:00:01", router=True
    )
    behind = endpoint("ip:10.30.0.9@vlan20", b"\x0a\x1e\x00\x09")
    devices = {d.id: d for d in build_devices([router, behind], [])}
    assert devices["mac:00:09:fb:00:00:01"].device_type == "network-infrastructure"
    assert devices["ip:10.30.0.9@vlan20"].vendor is None
    assert devices["ip:10.30.0.9@vlan20"].oui_vendor is None


def test_every_field_says_which_evidence_set_it() -> None:
    host = endpoint("mac:44:4b:5d:00:00:01", b"\x0a\x1e\x00\x0b", "44:4b:5d:00:00:01")
    rows = [
        evidence("10.30.0.11", "dicom.device_type", "ct", 0.6),
        evidence("10.30.0.11", "dicom.vendor", "GE Healthcare", 0.8),
        evidence("10.30.0.11", "dicom.manufacturer", "GE MEDICAL SYSTEMS"),
    ]
    (dev,) = build_devices([host], rows)
    assert (dev.device_type, dev.category, dev.vendor) == ("ct", "medical", "GE Healthcare")
    assert dev.classification["device_type"]["evidence"][0]["kind"] == "dicom.device_type"
    assert dev.classification["vendor"]["evidence"][0]["value"] == "GE Healthcare"


def conversation(client: str, server: str, port: int, app: str) -> Conversation:
    import ipaddress

    return Conversation(
        vlan=10,
        inner_vlan=None,
        proto=6,
        client_ip=ipaddress.ip_address(client).packed,
        server_ip=ipaddress.ip_address(server).packed,
        server_port=port,
        client_port=40000,
        client_mac=None,
        server_mac=None,
        app=app,
        connections=1,
        packets_c2s=5,
        packets_s2c=5,
        bytes_c2s=500,
        bytes_s2c=500,
        first_seen=1.0,
        last_seen=2.0,
    )


def test_interface_engine_is_inferred_from_fan_in_and_fan_out() -> None:
    engine = "10.10.5.20"
    convs = [
        conversation("10.20.0.5", engine, 2575, "hl7"),
        conversation("10.20.0.6", engine, 2575, "hl7"),
        conversation(engine, "10.10.5.40", 2575, "hl7"),
        conversation(engine, "10.10.5.41", 2575, "hl7"),
    ]
    roles = infer_roles(convs, [])
    assert [(r.host, r.value) for r in roles] == [(engine, "hl7-interface-engine")]
    assert "2 senders" in roles[0].source
    assert not infer_roles(convs[:3], [])  # one receiver is a plain HL7 client


def test_pacs_needs_stores_from_several_clients() -> None:
    pacs = "10.30.0.10"
    role = [evidence(pacs, "dicom.role", "storage scp")]
    one = [conversation("10.30.1.11", pacs, 104, "dicom")]
    two = [*one, conversation("10.30.1.12", pacs, 104, "dicom")]
    assert not infer_roles(one, role)
    assert [(r.host, r.value) for r in infer_roles(two, role)] == [(pacs, "pacs")]
    assert not infer_roles(two, [])  # a worklist server has many clients too


def test_group_labels_read_like_an_asset_register() -> None:
    assert group_label("patient-monitor", "Philips", "IntelliVue MX800", 35) == (
        "35 patient monitors (Philips IntelliVue MX800)"
    )
    assert group_label("ct", "GE Healthcare", None, 1) == "1 CT scanner (GE Healthcare)"
    assert group_label("infusion-pump", "B. Braun", None, 2) == "2 infusion pumps (B. Braun)"


def test_groups_put_medical_first() -> None:
    host = endpoint("mac:44:4b:5d:00:00:01", b"\x0a\x1e\x00\x0b", "44:4b:5d:00:00:01")
    pc = endpoint("mac:00:50:56:00:00:01", b"\x0a\x0a\x00\x05", "00:50:56:00:00:01")
    rows = [evidence("10.30.0.11", "dicom.device_type", "ct", 0.6)]
    groups = build_groups(build_devices([pc, host], rows))
    assert [g["device_type"] for g in groups] == ["ct", "unknown"]


def test_vendor_spellings_fold_to_one_company() -> None:
    result = classify(
        [claim("cdp.vendor", "cisco", 0.7), claim("lldp.vendor", "Cisco Systems, Inc.", 0.7)]
    )
    assert result.value("vendor") == "Cisco" and len(result.fields["vendor"].evidence) == 2


def test_a_known_product_line_names_the_type() -> None:
    result = classify([claim("lldp.model", "IntelliVue MX800", 0.7)])
    assert result.value("device_type") == "patient-monitor"
    assert result.fields["device_type"].evidence[0]["kind"] == "model.device_type"
