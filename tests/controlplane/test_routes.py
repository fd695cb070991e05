"""Route lists for APIs that replace the whole list."""

from controlplane.routes import canonical, desired


def test_keeps_foreign_adds_ours_advertised():
    assert desired(["203.0.113.0/24", "0.0.0.0/0", "::/0"], ["192.0.2.0/24", "10.0.0.0/8"], ["192.0.2.0/24"]) == (
        "0.0.0.0/0", "192.0.2.0/24", "203.0.113.0/24", "::/0")


def test_ours_not_advertised_is_not_added_and_dropped():
    assert desired(["192.0.2.0/24", "198.51.100.0/24"], ["198.51.100.0/24"], ["192.0.2.0/24", "198.51.100.0/24"]) == (
        "198.51.100.0/24",)


def test_idempotent_and_canonical():
    once = desired(["203.0.113.0/24"], ["192.0.2.0/24"], ["192.0.2.7/24"])
    assert desired(once, ["192.0.2.0/24"], ["192.0.2.0/24"]) == once == ("192.0.2.0/24", "203.0.113.0/24")
    assert canonical("10.1.2.3/8") == "10.0.0.0/8"


def test_retired_prefix_is_dropped_once_not_advertised_and_never_approved_anew():
    approved = ["192.0.2.0/24", "10.9.0.0/16", "203.0.113.0/24"]  # 10.9/16: ours before; 203.0.113/24: someone's
    assert desired(approved, ["192.0.2.0/24"], ["192.0.2.0/24"], retired=["10.9.0.0/16"]) == (
        "192.0.2.0/24", "203.0.113.0/24")
    # still advertised (the control server has not seen the router drop it yet): left as it is
    assert desired(approved, ["192.0.2.0/24", "10.9.0.0/16"], ["192.0.2.0/24"], retired=["10.9.0.0/16"]) == (
        "10.9.0.0/16", "192.0.2.0/24", "203.0.113.0/24")
    assert desired(["192.0.2.0/24"], ["192.0.2.0/24", "10.9.0.0/16"], ["192.0.2.0/24"], retired=["10.9.0.0/16"]) == (
        "192.0.2.0/24",)
