"""Schema evolution: old reader / new writer and new reader / old writer, each IDL rule.

Each test builds two versions of the same type (as two generated modules would be) and
passes bytes written with one through the other, for both codecs where the rule applies.
"""

from __future__ import annotations

import pytest

from rpcx.codec import CborCodec, Codec, JsonCodec
from rpcx.errors import CodecError
from rpcx.schema import (
    INT,
    STRING,
    FieldSpec,
    OpenEnum,
    StructSpec,
    enum_ref,
    list_of,
    optional,
    struct_ref,
    union_ref,
)
from tests.strategies import attach_enum, make_struct, make_union

CODECS: list[Codec] = [CborCodec(), JsonCodec()]
IDS = ["cbor", "json"]

OldCard = make_struct([FieldSpec(1, "number", STRING)], "v1.Card")
NewCard = make_struct([
    FieldSpec(1, "number", STRING),
    FieldSpec(2, "holder", optional(STRING), None),
    FieldSpec(3, "tags", list_of(STRING), []),
    FieldSpec(4, "retries", INT, 3),
], "v2.Card")
StrictCard = make_struct([
    FieldSpec(1, "number", STRING),
    FieldSpec(5, "cvc", STRING),
], "v3.Card")


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_new_writer_old_reader_skips_unknown_fields(codec: Codec) -> None:
    data = codec.encode(struct_ref(NewCard),
                        NewCard(number="4111", holder="Ann", tags=["x"], retries=9))
    assert codec.decode(struct_ref(OldCard), data) == OldCard(number="4111")


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_old_writer_new_reader_takes_defaults(codec: Codec) -> None:
    data = codec.encode(struct_ref(OldCard), OldCard(number="4111"))
    got = codec.decode(struct_ref(NewCard), data)
    assert got == NewCard(number="4111", holder=None, tags=[], retries=3)


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_absent_required_field_is_an_error_naming_it(codec: Codec) -> None:
    data = codec.encode(struct_ref(OldCard), OldCard(number="4111"))
    with pytest.raises(CodecError) as info:
        codec.decode(struct_ref(StrictCard), data)
    assert str(info.value) == "missing required field 'cvc'"


def test_renaming_field_and_type_changes_nothing_on_cbor_wire() -> None:
    Renamed = make_struct([FieldSpec(1, "pan", STRING)], "v9.PaymentCard")
    codec = CborCodec()
    old = codec.encode(struct_ref(OldCard), OldCard(number="4111"))
    assert codec.encode(struct_ref(Renamed), Renamed(pan="4111")) == old
    assert codec.decode(struct_ref(Renamed), old) == Renamed(pan="4111")


def test_renaming_a_type_changes_nothing_on_json_wire() -> None:
    Renamed = make_struct([FieldSpec(1, "number", STRING)], "other.Thing")
    codec = JsonCodec()
    assert (codec.encode(struct_ref(Renamed), Renamed(number="1"))
            == codec.encode(struct_ref(OldCard), OldCard(number="1")))


OLD_PARAMS = StructSpec("svc.S.m", None, (FieldSpec(1, "a", STRING),))
NEW_PARAMS = StructSpec("svc.S.m", None, (
    FieldSpec(1, "a", STRING),
    FieldSpec(2, "b", INT, 7),
    FieldSpec(3, "c", optional(STRING), None),
))
STRICT_PARAMS = StructSpec("svc.S.m", None, (FieldSpec(1, "a", STRING), FieldSpec(2, "b", INT)))


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_params_follow_the_same_rules(codec: Codec) -> None:
    new = codec.encode(NEW_PARAMS, ("x", 1, "y"))
    assert codec.decode(OLD_PARAMS, new) == ("x",)
    old = codec.encode(OLD_PARAMS, ("x",))
    assert codec.decode(NEW_PARAMS, old) == ("x", 7, None)
    with pytest.raises(CodecError) as info:
        codec.decode(STRICT_PARAMS, old)
    assert str(info.value) == "missing required field 'b'"




class OldColour(OpenEnum):
    RED = 1


class NewColour(OpenEnum):
    RED = 1
    GREEN = 2


attach_enum(OldColour, "v1.Colour")
attach_enum(NewColour, "v2.Colour")


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_unknown_enum_value_becomes_pseudo_member_and_round_trips(codec: Codec) -> None:
    # JSON carries names; a writer sends the number for a value its reader may not know,
    # which is what a pass-through old reader does.
    old, new = enum_ref(OldColour), enum_ref(NewColour)
    data = codec.encode(new, NewColour.GREEN)
    if codec.name == "json":
        data = b"2"
    got = codec.decode(old, data)
    assert got == 2 and got.name == "UNKNOWN_2" and not got.is_known
    assert codec.decode(new, codec.encode(old, got)) is NewColour.GREEN


def test_unknown_enum_value_inside_struct_passes_through_cbor() -> None:
    Old = make_struct([FieldSpec(1, "c", enum_ref(OldColour))], "v1.Paint")
    New = make_struct([FieldSpec(1, "c", enum_ref(NewColour))], "v2.Paint")
    data = CborCodec().encode(struct_ref(New), New(c=NewColour.GREEN))
    relayed = CborCodec().encode(struct_ref(Old), CborCodec().decode(struct_ref(Old), data))
    assert relayed == data


OldShape = make_union([FieldSpec(1, "circle", INT)], "v1.Shape")
NewShape = make_union([FieldSpec(1, "circle", INT), FieldSpec(3, "square", INT)], "v2.Shape")


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_unknown_union_variant_is_an_error(codec: Codec) -> None:
    data = codec.encode(union_ref(NewShape), NewShape(square=2))
    with pytest.raises(CodecError) as info:
        codec.decode(union_ref(OldShape), data)
    what = "tag 3" if codec.name == "cbor" else 'name "square"'
    assert str(info.value) == f"unknown variant {what} of union 'v1.Shape'"
    assert codec.decode(union_ref(NewShape), codec.encode(union_ref(OldShape),
                                                          OldShape(circle=1))) == NewShape(
        circle=1)
