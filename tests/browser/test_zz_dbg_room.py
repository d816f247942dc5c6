import json
import time

from tests.browser.conftest import login
from tests.browser.test_consult_in_browser import (
    ROOM_MS,
    _accept,
    _decodes,
    _enter_room,
    _request_consult,
    _route,
    _state,
)


def test_dbg(new_page, demo_data_dir, media_service):
    doctor = new_page(locale="en-US")
    login(doctor, "township")
    consult_id, patient_id = _request_consult(doctor)
    coordinator = new_page(locale="en-US")
    login(coordinator, "coordinator")
    _route(coordinator, consult_id)
    expert = new_page(locale="en-US")
    login(expert, "specialist")
    _accept(expert, consult_id)
    mine = _enter_room(expert, consult_id)
    theirs = _enter_room(doctor, consult_id)
    expert.click(f"button[data-admit='{theirs['me']['user_id']}']", timeout=ROOM_MS)
    doctor.wait_for_function("() => window.consultRoom.state.admitted", timeout=ROOM_MS)
    dp, ep = theirs["me"]["peer"], mine["me"]["peer"]
    _decodes(expert, dp, "x")
    _decodes(doctor, ep, "y")
    doctor.on("console", lambda m: print("DOCTOR", m.type, m.text))
    print("CUT", media_service.call("POST", f"/rooms/consult-{consult_id}/peers/{dp}/cut"))
    t0 = time.time()
    for i in range(10):
        time.sleep(2)
        for name, p in (("doctor", doctor), ("expert", expert)):
            st = _state(p)
            stats = p.evaluate("async () => await window.consultRoom.stats()")
            print(
                round(time.time() - t0, 1),
                name,
                json.dumps(st["media"]),
                json.dumps(
                    {
                        k: (v.get("framesDecoded"), v.get("connectionState"))
                        for k, v in stats["remotes"].items()
                    }
                ),
                stats["publish"] and stats["publish"]["connectionState"],
            )
        print("ROOM", json.dumps(media_service.call("GET", f"/rooms/consult-{consult_id}")[1]))
        d = media_service.call("GET", "/stats")[1]["rooms_detail"][f"consult-{consult_id}"]
        print("RELAYS", {p: v["relays"]["video"] for p, v in d.items()})
