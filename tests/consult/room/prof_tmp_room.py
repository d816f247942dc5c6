import cProfile, pstats, time, io
import pytest
from tests.consult.room.room_sockets import join, new_consult, receive_until, drain

pytestmark = pytest.mark.django_db(transaction=True)

async def test_prof(monkeypatch):
    import consult.room.consumer as C
    from consult.room.ratelimit import TokenBucket
    monkeypatch.setattr(C, 'TokenBucket', lambda **k: TokenBucket(rate=1e6, burst=10**6))
    consult = await new_consult()
    expert, _ = await join(consult.pk, "specialist")
    requester, _ = await join(consult.pk, "township")
    await expert.send_json_to({"type": "admit", "user_id": consult.requested_by_id})
    await receive_until(requester, "admitted")
    await drain(expert); await drain(requester)
    prof = cProfile.Profile()
    import threading
    t0 = time.perf_counter(); c0 = time.process_time()
    prof.enable()
    threading.setprofile(lambda *a: None)
    for i in range(300):
        await expert.send_json_to({"type": "viewer.state", "state": {"n": i, "imageIndex": i}})
        await receive_until(requester, "viewer.state")
    prof.disable()
    dt = time.perf_counter() - t0; dc = time.process_time() - c0
    print(f"\nper message wall {dt/300*1000:.2f} ms, cpu {dc/300*1000:.2f} ms")
    s = io.StringIO(); pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(40); print(s.getvalue()[:8000])
    await expert.disconnect(); await requester.disconnect()
