"""Default StructNet configuration: the README's main job.

With no data on the machine it renders the procedural ``structnet_h36m``
dataset (64x64 person crops through the four Human3.6M cameras), trains both
stages (1000 + 1000 steps) of a StructNet of Figure 1's shape at half the
input side and a quarter of the widths, and evaluates with every row of
Table 1 (the README gives the measured time). The cost and the candidate
sets are the paper's (section 5.3: C = 2000 + K = 10 candidates,
lambda = 1, alpha = 1e-4), and stage 1 is the multi-task network of the
paper's [18] (pose regression plus joint detection,
``model.detection_grid``). The choices that differ, each chosen on the
validation split of the learning study
(experiments/results/learning_study/) and each one flag away from the
paper's: AdamW in both stages (alpha as decoupled weight decay; the paper
line-searches stage 2, ``stage2.optimizer``), the pre-trained FC layers
kept with a 300 mm margin unit (``stage2.reinit_fc``), a random hue and
saturation per training image besides the paper's PCA colour noise
(``data.hue_jitter_deg``, ``data.saturation_jitter``), eight rendered looks
per training subject (``data.looks_per_subject``) and dropout 0.5 on h1
and h2 (``model.dropout_rate``; the paper: 0.75 at four times the widths).
``paper.py`` has the paper's sizes and choices.

``get_config()`` returns the full set of fields; every other config in this
folder starts from it and overrides a few, so an unknown field anywhere is an
error (``structnet_jax.config_utils.check_config``).

Usage:
  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=/tmp/structnet --config.stage2.num_steps=2000
"""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  # --- data ---------------------------------------------------------------
  c.data = ml_collections.ConfigDict()
  c.data.source = "tfds"           # tfds | render (JAX, on device) | blobs (toy, no rendering)
  c.data.image_size = 64           # stored crop side (pixels; the paper: 128)
  c.data.num_test = 2000           # blobs: test examples
  c.data.pose_space_size = 20000   # blobs: poses in the candidate space Y
  # tfds: the structnet_h36m dataset (data_pipelines/tfds/builder.py), built
  # in data_dir on first use.
  c.data.tfds_config = "procedural"  # procedural | h36m_motion | positions | h36m_release
  c.data.data_dir = "~/tensorflow_datasets"
  c.data.motion_path = ""          # h36m_motion / render: exp-map .npz or folder ("" = procedural for render); positions: its .npz
  c.data.manual_dir = ""           # h36m_release: the official release folder
  # Dataset options (0 / "": the builder config's own default); a dataset
  # with changed options gets its own folder
  # (data_pipelines/tfds/builder.make_config).
  c.data.frame_step = 0            # keep every n-th frame
  c.data.sequences_per_action = 0  # procedural: clips per subject and action
  c.data.frames_per_sequence = 0   # procedural: frames per clip
  # Looks (outfit and build) per training subject, one per sequence
  # (appearance.look_name); test subjects keep their one look. 0 = 1.
  # Eight (not the paper's: its people are filmed), so that the CNN cannot
  # learn five outfits; chosen on the validation split together with
  # dropout 0.5 (experiments/results/learning_study/, section 12).
  c.data.looks_per_subject = 8
  c.data.actions = ""              # comma-separated action names; "" = all
  c.data.train_subjects = ""       # comma-separated; "" = S1,S5,S6,S7,S8; "none": no train split (positions)
  c.data.test_subjects = ""        # comma-separated; "" = S9,S11 (positions: every subject not in train)
  # Choose settings on a validation split: e.g. "S8" trains on the other
  # training subjects and evaluates on S8; the test subjects stay unseen.
  c.data.validation_subjects = ""
  # positions (data_pipelines/motion/positions.py): "" = the dataset's default.
  c.data.placement = ""            # auto | centre | per_frame | as_given
  c.data.random_yaw = False        # turn each sequence by a random yaw
  c.data.rig_subject = ""          # whose cameras film non-Human3.6M subjects ("" = S9)
  c.data.pca_noise_std = 0.1       # tfds / render: PCA colour-noise strength
  # Colour jitter of training batches (not the paper's; every source): a
  # hue turn in [-hue_jitter_deg, hue_jitter_deg] and a saturation scale in
  # [1 - saturation_jitter, 1 + saturation_jitter] per image
  # (data_pipelines/sources/augment.colour_jitter). With five rendered
  # outfits the CNN learns their colours; chosen on the validation split
  # (experiments/results/learning_study/, section 9). 0, 0: off (paper.py).
  c.data.hue_jitter_deg = 180.0
  c.data.saturation_jitter = 0.5

  # --- network (Figure 1) -------------------------------------------------
  c.model = ml_collections.ConfigDict()
  c.model.image_size = 56          # network input side (random crop; paper: 112 of 128)
  c.model.conv_features = (16, 32, 32)  # paper: (32, 64, 64)
  c.model.conv_kernel_sizes = (9, 5, 5)
  c.model.conv_padding = "VALID"
  c.model.conv_impl = "auto"       # auto = xla (on CPU with YNNPACK fusions: structnet_jax/xla_cpu.py)
  c.model.h1_width = 256           # paper: 1024 for all five widths
  c.model.h2_width = 256
  c.model.h3_width = 256
  c.model.embed_dim = 256
  c.model.pose_hidden = 256
  c.model.pose_embedding = "two_layer"  # Table 3: raw|one_layer_random|one_layer|two_layer
  # Dropout on h1 and h2 (paper: 0.75 at 1024 units, ~256 kept; at a
  # quarter of the widths 0.75 keeps 64). Chosen on the validation split
  # (learning study, sections 11-12); paper.py: 0.75.
  c.model.dropout_rate = 0.5
  # Stage 1 as the multi-task network of the paper's [18]: pose regression
  # plus body-joint detection, one detector per joint and cell of a G x G
  # grid over the input crop, on h3 (structnet_jax/detection.py), weighted
  # by loss.detection_weight. 0: pose regression alone (needed for the
  # 'blobs' data, which has no 2D joints). Chosen on the validation split
  # (experiments/results/learning_study/).
  c.model.detection_grid = 8

  # --- cost (Eq. 12) ------------------------------------------------------
  c.loss = ml_collections.ConfigDict()
  c.loss.pose_weight = 1.0         # lambda
  c.loss.weight_decay = 1e-4       # alpha
  c.loss.margin_unit_mm = 300.0    # Delta = MPJPE / margin_unit_mm (paper.py: 100)
  c.loss.detection_weight = 0.1    # stage 1's detection term (model.detection_grid > 0)

  # --- stage 1: pose-regression pre-training of the trunk (section 5.3) ---
  c.stage1 = ml_collections.ConfigDict()
  c.stage1.num_steps = 1000
  c.stage1.init_from = ""          # another run's workdir: share its stage 1
  c.stage1.optimizer = "adamw"     # adamw (alpha as decoupled weight decay) | rmsprop (same, no momentum) | adam (alpha inside Adam) | momentum | line_search
  c.stage1.learning_rate = 1e-3    # adam / adamw / rmsprop / momentum
  c.stage1.momentum = 0.9          # momentum

  # --- stage 2: max-margin training (Algorithm 1) --------------------------
  c.stage2 = ml_collections.ConfigDict()
  c.stage2.num_steps = 1000
  c.stage2.num_candidates = 2000   # C uniform samples per batch
  c.stage2.num_frequent = 10       # K most frequently violated poses
  c.stage2.freeze_trunk = True     # conv layers fixed, augmentation stays on
  # FC layers also kept as stage 1 left them, comma-separated (e.g.
  # "h1,h2,h3,head": only the embeddings h4 and f_J learn the score).
  c.stage2.frozen_layers = ""
  # The paper starts the FC layers from random weights (paper.py); with
  # AdamW, kept or re-initialised FC layers and a 100 or 300 mm margin unit
  # end within the stage-1 noise on validation (learning_study/, V9, V10).
  c.stage2.reinit_fc = False       # True: FC layers start from random weights
  # The paper's optimiser is "line_search" (section 4: plain gradient, a
  # line search per batch, no momentum; paper.py). On the validation split
  # of this config it stopped stage 2 from improving on stage 1 and made the
  # pose head worse, while AdamW (alpha as decoupled weight decay) did not
  # (experiments/results/learning_study/).
  c.stage2.optimizer = "adamw"     # line_search (the paper's) | adamw | rmsprop | adam | momentum
  c.stage2.learning_rate = 1e-3    # adam / adamw / rmsprop / momentum
  c.stage2.momentum = 0.9          # momentum

  # --- the line search (stage2.optimizer = "line_search") -------------------
  c.line_search = ml_collections.ConfigDict()
  c.line_search.min_step = 1e-7
  c.line_search.max_step = 1e2
  c.line_search.num_coarse = 19
  c.line_search.num_fine = 16
  c.line_search.trial_batch_size = 0  # 0: all trials at once (vmap)
  # fixed_violators: Eq. 12 over the extended data (x, y, y_hat) with y_hat
  # fixed (the paper); structured: y_hat re-solved over Y_B at every trial.
  c.line_search.objective = "fixed_violators"

  # --- loop ---------------------------------------------------------------
  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64          # paper: 128
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  # Split the pose space Y along N over the devices (stage 2's candidate
  # draws, and the evaluation's table: structnet_jax/sharded_scoring.py)
  # instead of replicating it: for motion collections of millions of poses.
  c.train.shard_pose_space = False
  # Time one stage-1 step and one evaluation batch on this machine for the
  # run's start-of-run plan line (experiments/plan.py); off: counts only.
  c.train.plan_probe = True

  # --- evaluation -----------------------------------------------------------
  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 128
  c.eval.avg_sizes = (20, 500, 1500)
  c.eval.top_k = 10
  c.eval.apf_sizes = (500, 1500)   # StructNet-Avg(A)-APF rows (A in avg_sizes)
  c.eval.apf_particles = 100       # paper.py: 200 particles, 10 layers, 300 steps
  c.eval.apf_layers = 5
  c.eval.apf_refine_steps = 100    # gradient steps after the annealing (0: pure APF)
  c.eval.figures = True            # figure3.png, figure4a-d.png, alignment
  c.eval.figure3_max_a = 5000      # Figure 3's A axis: 1, 2, 5, ... up to this
  c.eval.figure4_num_images = 2000  # training images in Figure 4 / alignment
  c.eval.check_images = 1000       # "Did it learn?": train/test images per stage (0: off)
  c.eval.regression_row = True     # "Regression net (stage 1)": the pose head trained alone
  # LinKDE baseline (structnet_jax/linkde.py), fitted on the training split.
  c.eval.linkde = True
  c.eval.linkde_train_images = 20000  # at most this many training images
  c.eval.linkde_features = 4096    # random Fourier features of the HOG
  c.eval.linkde_cell_size = 8      # HOG cell side (pixels)
  return c
