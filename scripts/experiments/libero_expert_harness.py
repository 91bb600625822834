# The LIBERO expert harness of issue 12 (kept as it ran; state-only LIBERO env, soft resets):
#   PYTHONPATH=src python scripts/experiments/libero_expert_harness.py libero_spatial 0,1,2,3,4,5,6,7,8,9 noise,rand,init 10
# `care collect --env.type libero ...` is the supported way to measure expert success (docs/RESULTS.md).
"""Harness: python run.py SUITE TASKS MODES N [trace]   MODES: comma list of rand,noise,init"""
import sys, time, json, numpy as np
from libero.libero import benchmark
from libero.libero.envs import OffScreenRenderEnv
from care.envs.libero_expert import LiberoExpert, expert_support
LIMIT = dict(libero_spatial=220, libero_object=280, libero_goal=300, libero_10=520)
sname = sys.argv[1]; tids = [int(x) for x in sys.argv[2].split(",")]; modes = sys.argv[3].split(","); N = int(sys.argv[4])
trace = len(sys.argv) > 5 and sys.argv[5] == "trace"
suite = benchmark.get_benchmark(sname)(task_order_index=0)
def noisy(a, rng, st):
    if st["left"] == 0 and rng.random() < 0.02:
        d = rng.normal(size=3); st["dir"] = d / np.linalg.norm(d) * rng.uniform(0.5, 1.0); st["left"] = 6
    a = a.copy()
    if st["left"] > 0: a[:3] = st["dir"]; st["left"] -= 1
    return np.clip(a + rng.normal(0, 0.1, 7), -1, 1)
results = {}
for tid in tids:
    env = OffScreenRenderEnv(bddl_file_name=suite.get_task_bddl_file_path(tid), use_camera_obs=False, has_offscreen_renderer=False, hard_reset=False)
    env.reset(); reason = expert_support(env)
    if reason: print(f"TASK {sname} {tid} UNSUPPORTED: {reason}", flush=True); results[tid] = reason; env.close(); continue
    init = suite.get_task_init_states(tid)
    for mode in modes:
        succ, steps, rows = 0, [], []
        n = min(5, N) if mode == "init" else N
        for ep in (range(n) if len(sys.argv) < 7 else [int(x) for x in sys.argv[6].split(",")]):
            if mode == "init":
                env.reset(); obs = env.set_init_state(init[ep])
            else:
                np.random.seed(ep); obs = env.reset()
            for _ in range(10): obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
            ex = LiberoExpert(env, rng=np.random.default_rng(1000 + ep) if mode == "noise" else None); ex.reset()
            nrng = np.random.default_rng(ep); st = {"left": 0}
            ok = False; last = None
            for k in range(LIMIT[sname]):
                a = ex(obs)
                if trace and (ex.phase != last or (k % 20 == 0)):
                    print(f"   t={k} {ex.phase} eef={obs['robot0_eef_pos'].round(3)} obj={env.sim.data.body_xpos[ex.obj_body].round(3)} gap={obs['robot0_gripper_qpos'][0]-obs['robot0_gripper_qpos'][1]:.4f} ori={ex.ori_err:.3f} oq={env.sim.data.body_xquat[ex.obj_body].round(2)} yaw={ex.yaw:.2f} a={np.round(a,2)}"); last = ex.phase
                if trace and ex.phase != last and ex.phase in ("close", "regrasp"):
                    import mujoco; m = env.sim.model._model; dd = env.sim.data._data
                    for i in range(dd.ncon):
                        c = dd.contact[i]; n1 = mujoco.mj_id2name(m, 5, c.geom1) or str(c.geom1); n2 = mujoco.mj_id2name(m, 5, c.geom2) or str(c.geom2)
                        if "gripper" in n1 + n2 or "robot" in n1 + n2: print("      contact", n1, n2, c.pos.round(3))
                if mode == "noise": a = noisy(a, nrng, st)
                obs, r, done, info = env.step(a)
                if env.check_success(): ok = True; break
            succ += ok; steps += [k + 1] if ok else []
            rows.append((ep, ok, k + 1, ex.phase, ex.n_replans))
            print(f"  {sname} t{tid} {mode} ep{ep} ok={ok} steps={k+1} phase={ex.phase} regrasps={ex.n_replans} obj={env.sim.data.body_xpos[ex.obj_body].round(3)}", flush=True)
        print(f"TASK {sname} {tid} {mode}: {succ}/{n} mean_steps={np.mean(steps) if steps else float('nan'):.0f}", flush=True)
        results.setdefault(tid, {})[mode] = dict(succ=succ, n=n, mean_steps=float(np.mean(steps)) if steps else None, rows=rows)
    env.close()
json.dump(results, open(f"results/issue12/expert_{sname}_{sys.argv[2].replace(',','-')}_{sys.argv[3].replace(',','-')}.json", "w"), default=str)
