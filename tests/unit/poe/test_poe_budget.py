"""The budget rules on their own: charges, precedence, admission and shedding."""

import pytest

from appliance.poe.budget import (Claim, admit, charge_w, class_allocation_w, overrun,
                                  shedding_order)


def claim(port, priority="low", alloc=30.0, measured=None):
    return Claim(port=port, priority=priority, allocation_w=alloc, measured_w=measured,
                 delivering=measured is not None)


@pytest.mark.parametrize("pd_class, port_max, watts", [
    (0, 30, 15.4), (1, 30, 4.0), (2, 30, 7.0), (3, 30, 15.4), (4, 30, 30.0),
    (4, 15.4, 15.4), (None, 30, 15.4), (7, 30, 15.4)])
def test_class_allocation_is_the_ieee_pse_minimum_capped_by_the_port(pd_class, port_max, watts):
    assert class_allocation_w(pd_class, port_max) == watts


def test_charges_by_policy():
    c = claim(1, alloc=30.0, measured=8.0)
    assert charge_w(c, "class", 2.0) == 30.0
    assert charge_w(c, "measured", 2.0) == 10.0
    assert charge_w(claim(1, alloc=7.0, measured=6.5), "measured", 2.0) == 7.0, "capped"
    assert charge_w(claim(1, alloc=7.0, measured=9.0), "measured", 2.0) == 9.0, "over class"
    assert charge_w(claim(1, alloc=30.0), "measured", 2.0) == 30.0, "not delivering yet"


def test_shedding_order_lowest_priority_then_highest_port_number():
    claims = [claim(1, "critical"), claim(2, "low"), claim(3, "high"), claim(5, "low"),
              claim(4, "low"), claim(8, "high")]
    assert [c.port for c in shedding_order(claims)] == [5, 4, 2, 8, 3, 1]


def test_admission():
    powered = [claim(1, "low"), claim(2, "low"), claim(3, "high")]
    assert admit(claim(4, "low"), powered, 120).granted
    denied = admit(claim(4, "low"), powered, 90)
    assert not denied.granted and denied.shed == () and denied.in_use_w == 90.0
    assert admit(claim(4, "high"), powered, 90).shed == (2,)
    assert admit(claim(4, "critical", alloc=60), powered, 90).shed == (2, 1)
    assert not admit(claim(4, "critical", alloc=100), powered, 90).granted, \
        "nobody is shed when it cannot help"
    assert admit(claim(4, "high", alloc=4.0), [claim(1, alloc=7.0)], 11.0).granted, "exact fit"


def test_overrun_sheds_until_both_totals_fit():
    powered = [claim(1, "critical", 30, 25.0), claim(2, "low", 30, 25.0),
               claim(3, "low", 30, 25.0)]
    assert overrun(powered, 90) == ()
    assert overrun(powered, 70, policy="measured", margin_w=0) == (3,)
    assert overrun(powered, 70) == (3,), "90 W charged by class"
    assert overrun(powered, 40, policy="measured") == (3, 2)
