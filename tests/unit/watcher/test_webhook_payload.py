"""The Helius enhanced-webhook payload check: only the signature and the followed leaders named in
it are taken; every malformed shape is refused whole, naming the field and the rule."""

from __future__ import annotations

import pytest

from xorj.errors import InvalidInputError
from xorj.watcher.webhook import MAX_ENTRIES, leader_signatures

LEADER = "LeadTrader1111111111111111111111111111111111"
OTHER = "Bther11111111111111111111111111111111111111"
SIG = "5" * 87


def test_followed_leaders_named_as_fee_payer_or_account_are_taken_once_each() -> None:
    body = [{"signature": SIG, "feePayer": LEADER, "accountData": [{"account": LEADER}, {"account": OTHER}],
             "type": "SWAP", "tokenTransfers": [{"tokenAmount": 1e30}]},
            {"signature": "4" * 88, "feePayer": OTHER}]
    assert leader_signatures(body, {LEADER}) == [(LEADER, SIG)]
    assert leader_signatures(body, {LEADER, OTHER}) == [(LEADER, SIG), (OTHER, SIG), (OTHER, "4" * 88)]
    assert leader_signatures([], {LEADER}) == []


@pytest.mark.parametrize(("body", "field"), [
    ({"signature": SIG}, "payload: must be a JSON array"),
    (["x"], "payload[0]: must be an object"),
    ([{"feePayer": LEADER}], "payload[0].signature"),
    ([{"signature": "0OIl" * 20}], "payload[0].signature"),
    ([{"signature": SIG * 2}], "payload[0].signature"),
    ([{"signature": SIG, "feePayer": 7}], "payload[0].feePayer"),
    ([{"signature": SIG, "accountData": {}}], "payload[0].accountData: must be an array"),
    ([{"signature": SIG, "accountData": [{"account": "short"}]}], "payload[0].accountData[0].account"),
    ([{"signature": SIG}] * (MAX_ENTRIES + 1), "payload: at most"),
])
def test_malformed_payloads_are_refused_naming_the_field(body: object, field: str) -> None:
    with pytest.raises(InvalidInputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        leader_signatures(body, {LEADER})
