import RecCore

extension Scenario {
    static let retrieval = TaggedSchema("retrieval", "How candidates are retrieved.", [
        .init("random", "Uniformly random items."),
        .init("popularity", "The items with the most clicks in this arm so far, plus a share of random items.", [
            Property("explore", .number(minimum: 0, maximum: 1), "Share of the candidates drawn uniformly at random, so that new items can earn clicks.", default: 0.2),
        ]),
        .init("two-tower", "Single-vector retrieval: the items whose tower vector best matches the user's (the mean of their recent clicks), learned online from the arm's clicks.", towerProperties),
        .init("sparc", "SPARC: interests as codes of a residual-quantized codebook over the item vectors, a probability over them per user, retrieval for several interests at once including unexplored ones.", towerProperties + [
            Property("codes", .array(.integer(minimum: 1, maximum: 4096), minItems: 1, maxItems: 8), "Codes per residual level; level 0's are the interests.", default: [64, 64, 64]),
            Property("restartEvery", .integer(minimum: 1, maximum: 1_000_000), "Training steps between checks for dead codes.", default: 50),
            Property("userFeatures", .boolean, "Feed the users' features (segment, region, activity) to the interest tower beside their recent behaviour. Off by default: in the sparc-exploration world they made the distribution follow segments, and SPARC lost a third of its clicks.", default: false),
            Property("deadBelow", .number(minimum: 0, maximum: 1_000_000), "A code whose moving average of items per step falls below this is dead and restarts on a recent item vector; at decay 0.99 an unused code falls from 1 to 0.05 in about 300 steps.", default: 0.05),
            Property("interests", .integer(minimum: 1, maximum: 64), "Top interests retrieved for, by the user's probability.", default: 4),
            Property("explore", .integer(minimum: 0, maximum: 64), "Further interests drawn at exploreTemperature among codes the user has not engaged with lately.", default: 2),
            Property("exploreTemperature", .number(minimum: 0, maximum: 1000, exclusiveMinimum: true), "Draws are proportional to p^(1/T): above 1 flattens the distribution toward the long tail.", default: 2),
            Property("exploreQuota", .integer(minimum: 1, maximum: 100_000), "Candidates per explored interest.", default: 10),
            Property("minQuota", .integer(minimum: 1, maximum: 100_000), "Candidates at least per top interest; beyond, quotas follow the probabilities.", default: 5),
            Property("query", .string(oneOf: ["bucket", "conditioned"]), "bucket: each interest's items (its bucket of the index) ranked by the user vector; conditioned: the query u + e0_k, trained label-aware, searched through `probes` buckets of the index.", default: "bucket"),
            Property("probes", .integer(minimum: 0, maximum: 4096), "With query conditioned: buckets of the index searched per top interest; 0 searches every item exactly.", default: 8),
            Property("smoothing", .number(minimum: 0, maximum: 1), "Each engagement moves the user's running interest distribution this far toward its code.", default: 0.1),
            Property("mix", .number(minimum: 0, maximum: 1), "Serving distribution: p^mix times running^(1 - mix), normalised (1 is the towers' distribution alone).", default: 0.7),
            Property("discoveryBelow", .number(minimum: 0, maximum: 1), "A first click on an interest whose probability was below this when served counts as a discovery (uniform over 64 codes is 0.016).", default: 0.01),
        ]),
    ])

    static let towerProperties: [Property] = [
        Property("dim", .integer(minimum: 1, maximum: 1024), "Width of item and user vectors (and of the codes).", default: 64),
        Property("historyLength", .integer(minimum: 1, maximum: 10_000), "Recent clicks the user vector averages.", default: 50),
        Property("learningRate", .number(minimum: 0, maximum: 10, exclusiveMinimum: true), "Adam learning rate of the towers.", default: 0.01),
        Property("temperature", .number(minimum: 0, maximum: 100, exclusiveMinimum: true), "In-batch InfoNCE temperature.", default: 0.1),
        Property("batchSize", .integer(minimum: 1, maximum: 1_000_000), "Impressions per training step.", default: 256),
    ]

    static func sequenceProperties(_ dims: [Property]) -> [Property] {
        dims + [
            Property("topK", .integer(minimum: 1, maximum: 10_000), "Behaviours the search stage keeps (at most maxHistory).", default: 20),
            Property("maxHistory", .integer(minimum: 1, maximum: 100_000), "The most recent behaviours the model reads (L).", default: 200),
            Property("learningRate", .number(minimum: 0, maximum: 10, exclusiveMinimum: true), "Adam learning rate.", default: 0.01),
            Property("batchSize", .integer(minimum: 1, maximum: 1_000_000), "Samples per training step.", default: 256),
            Property("viewSecondsWeight", .number(minimum: 0, maximum: 100), "Weighted target: a click counts 1 + this x ln(1 + view seconds) in the loss (0: every click counts 1).", default: 0),
            Property("purchaseWeight", .number(minimum: 0, maximum: 100), "Delayed label: a purchase, when it arrives (ticks after its click), is trained as a positive of this weight against the user's history then (0: purchases are not trained on).", default: 0),
            Property("optimizer", .string(oneOf: ["lazy-adam", "adam"]), "How the embedding tables step: lazy-adam updates only the rows a step touched (the streaming default); adam is the reference's dense Adam, every row every step (slow on large tables; for comparison).", default: "lazy-adam"),
            Property("batchNorm", .boolean, "The reference's BatchNorm on the MLP's input: a training step normalises by its batch's statistics, scoring by running ones. Off for streaming (a tick's batches are small and drift); on, to measure what that costs. Training steps then run on one thread.", default: false),
            Property("auxLossWeight", .number(minimum: 0, maximum: 100), "The DARE reference's auxiliary head: a second MLP on a softmax over all maxHistory behaviours (not the top K), its loss times this weight (the reference: 1). Training touches every behaviour's rows, so it is far slower; 0: no head.", default: 0),
        ]
    }

    /// The long-sequence models (also what a blend uses for established items).
    static let sequenceVariants: [TaggedSchema.Variant] = [
        .init("dare", "DARE: decoupled attention and representation embeddings with top-K search over the history, trained online.",
              sequenceProperties([
                  Property("attentionDim", .integer(minimum: 1, maximum: 1024), "Attention embedding size per field (item, category, time).", default: 16),
                  Property("representationDim", .integer(minimum: 1, maximum: 1024), "Representation embedding size per field.", default: 16),
              ])),
        .init("twin", "TWIN: like DARE with one embedding table set shared by attention and representation.",
              sequenceProperties([
                  Property("dim", .integer(minimum: 1, maximum: 1024), "Embedding size per field (item, category, time).", default: 16),
              ])),
        .init("twin-proj", "TWIN with projections: TWIN's shared tables with a square projection per field for query, keys and both representations.",
              sequenceProperties([
                  Property("dim", .integer(minimum: 1, maximum: 1024), "Embedding size per field (item, category, time).", default: 16),
              ])),
        .init("din", "DIN-style: TWIN's shared tables, attention over the most recent topK behaviours only (no search).",
              sequenceProperties([
                  Property("dim", .integer(minimum: 1, maximum: 1024), "Embedding size per field (item, category, time).", default: 16),
              ])),
    ]

    static let polyProperties: [Property] = [
        Property("dim", .integer(minimum: 1, maximum: 1024), "Width of token states, content vectors and poly embeddings.", default: 64),
        Property("userCodes", .integer(minimum: 1, maximum: 1024), "m: context codes attending over the user's sessions and summary (user poly-embeddings).", default: 32),
        Property("contentCodes", .integer(minimum: 1, maximum: 1024), "n: context codes attending over an item's content tokens (content poly-embeddings).", default: 4),
        Property("sessions", .integer(minimum: 1, maximum: 1000), "g: sessions of the history read (the last g x sessionSize clicks).", default: 15),
        Property("sessionSize", .integer(minimum: 1, maximum: 1000), "p: clicks per session; sessions are encoded independently.", default: 4),
        Property("negatives", .integer(minimum: 1, maximum: 1000), "r: negatives per click in the NCE loss: the slate's non-clicks first, then random live items.", default: 4),
        Property("matching", .string(oneOf: ["learned", "plain"]), "How the m x n dot products are weighted: learned (softmax of A gelu(B W^s)^T, EmbSum's) or plain (softmax of the products themselves).", default: "learned"),
        Property("temperature", .number(minimum: 0, maximum: 100, exclusiveMinimum: true), "NCE temperature.", default: 1),
        Property("summaryWeight", .number(minimum: 0, maximum: 100), "lambda: weight of the summary loss (the summary vector predicts the user's top TF-IDF tokens); 0 turns it off.", default: 1),
        Property("summaryTokens", .integer(minimum: 1, maximum: 1000), "T: the user's top TF-IDF content tokens the summary predicts (at most catalog.vocabulary).", default: 16),
        Property("learningRate", .number(minimum: 0, maximum: 10, exclusiveMinimum: true), "Adam learning rate. EmbSum fine-tunes a pre-trained T5 (1e-3, batch 128); trained from scratch online, Poly needs more and larger steps: in cold-start.json, 1e-3 with 128 slates left it 41% behind DARE on view seconds, and 0.01 with 32 brings it level.", default: 0.01),
        Property("batchSize", .integer(minimum: 1, maximum: 1_000_000), "Slates (requests) per training step; a slate without a click adds nothing.", default: 32),
    ]

    static let ranking = TaggedSchema("ranking model", "How candidates are scored.", [
        .init("random", "Random scores."),
        .init("popularity", "Click counts learned online from the arm's feedback."),
    ] + sequenceVariants + [
        .init("poly", "EmbSum-style poly-attention: several user embeddings from the sessions of the history and a summary, a few content embeddings from the item's tokens, matched by attention; scores items nobody has clicked yet.", polyProperties),
        .init("blend", "Poly for items younger than youngTicks (arrived during the run), a sequence model for the rest.", polyProperties + [
            Property("youngTicks", .integer(minimum: 1, maximum: 1_000_000), "Items younger than this (in ticks since arrival) are scored by Poly.", default: 10),
            Property("established", .tagged(TaggedSchema("sequence model", "The model for established items.", sequenceVariants)), "The sequence model for established items.", default: ["type": "dare"]),
        ]),
        .init("ctr", "Click-through rate learned online, smoothed by a Beta prior.", [
            Property("priorClicks", .number(minimum: 0, exclusiveMinimum: true), "Prior clicks of every item.", default: 1),
            Property("priorImpressions", .number(minimum: 0, exclusiveMinimum: true), "Prior impressions of every item.", default: 20),
        ]),
    ])

    static let policy = TaggedSchema("policy", "How the slate is built from scored candidates.", [
        .init("greedy", "The best remaining candidate at each position."),
        .init("epsilon-greedy", "With probability epsilon, a uniformly random remaining candidate.", [
            Property("epsilon", .number(minimum: 0, maximum: 1), "Exploration probability per position.", default: 0.1),
        ]),
        .init("softmax", "A candidate drawn with probability proportional to exp(score / temperature).", [
            Property("temperature", .number(minimum: 0, exclusiveMinimum: true), "Softmax temperature (scores are standardised first).", default: 1),
        ]),
        .init("ucb", "Greedy on the standardised score plus an upper-confidence bonus, bonus * sqrt(ln(N + 1) / (n + 1)), for an item shown n of the arm's N impressions.", [
            Property("bonus", .number(minimum: 0, maximum: 100), "Weight of the uncertainty bonus, in standard deviations of the scores.", default: 1),
        ]),
        .init("thompson", "Thompson sampling: each candidate's click-through rate drawn from its Beta posterior (the arm's own impressions and clicks), best draws first. Replaces the ranking model's scores.", [
            Property("priorClicks", .number(minimum: 0, maximum: 1_000_000, exclusiveMinimum: true), "Beta prior: pseudo-clicks.", default: 1),
            Property("priorImpressions", .number(minimum: 0, maximum: 1_000_000, exclusiveMinimum: true), "Beta prior: pseudo-impressions (more than priorClicks).", default: 20),
            Property("propensitySamples", .integer(minimum: 1, maximum: 100_000), "Resamples per request to estimate each shown item's propensity (Thompson has no closed form); each costs a Beta draw per candidate.", default: 16),
        ]),
        .init("interest-sampling", "SPARC's interest sampling (with SPARC retrieval): each position draws an interest in proportion to p^(1/temperature) among those the remaining candidates came from, and shows that interest's best-ranked remaining candidate.", [
            Property("temperature", .number(minimum: 0, maximum: 1000, exclusiveMinimum: true), "Above 1 flattens the interests' probabilities toward the long tail.", default: 1),
        ]),
    ])

    static let positionBias = TaggedSchema("position bias", "How likely a user is to examine each position of a slate.", [
        .init("position-based", "Position k (from 0) is examined with probability (1 + k)^-exponent.", [
            Property("exponent", .number(minimum: 0, maximum: 10), "How fast examination falls with position.", default: 0.7),
        ]),
        .init("cascade", "The user scans down the slate and stops, after each position, with some probability.", [
            Property("continueProbability", .number(minimum: 0, maximum: 1), "Chance of going on after a position without a click.", default: 0.85),
            Property("continueAfterClick", .number(minimum: 0, maximum: 1), "Chance of going on after a click.", default: 0.5),
        ]),
    ])

    static let arm = ObjectSchema("One arm of the experiment.", [
        Property("name", .string(minLength: 1), "The arm's name, unique in the scenario.", required: true),
        Property("share", .number(minimum: 0, maximum: 1, exclusiveMinimum: true), "Share of users assigned to this arm; shares sum to 1.", required: true),
        Property("candidates", .integer(minimum: 1, maximum: 100_000), "Candidates retrieval hands to ranking (at least the slate size).", default: 100),
        Property("retrieval", .tagged(retrieval), retrieval.summary, default: ["type": "random"]),
        Property("ranking", .tagged(ranking), ranking.summary, default: ["type": "random"]),
        Property("policy", .tagged(policy), policy.summary, default: ["type": "greedy"]),
        Property("oracleShare", .number(minimum: 0, maximum: 1), "A planted effect of known mechanism, for checking the statistics: this share of the arm's requests (by a hash of seed, user and tick) is answered with the world's oracle slate (the most attractive live items for the user, best first) instead of the arm's own. `recstream run` only.", default: 0),
    ])

    /// Every key a scenario may hold, with its default and effect.
    public static let schema = ObjectSchema("A recstream A/B simulation scenario.", [
        Property("name", .string(minLength: 1), "The scenario's name, shown in reports.", required: true),
        Property("description", .string(), "What question the scenario answers.", default: ""),
        Property("seed", .integer(minimum: 0, maximum: Int64.max), "Seed of every random stream; `--seed` overrides it.", default: 42),
        Property("ticks", .integer(minimum: 1, maximum: 1_000_000), "Steps of simulated time.", default: 50),
        Property("population", .object(ObjectSchema("The simulated users.", [
            Property("users", .integer(minimum: 1, maximum: 10_000_000), "Number of users.", default: 2000),
            Property("requestProbability", .number(minimum: 0, maximum: 1, exclusiveMinimum: true), "Median chance that a user asks for a slate in a tick.", default: 0.5),
            Property("activitySpread", .number(minimum: 0, maximum: 3), "Spread (log-normal sigma) of users' activity around the median: heavy and light users.", default: 0.6),
            Property("slateSize", .integer(minimum: 1, maximum: 255), "Items per slate.", default: 10),
            Property("purchaseDelayTicks", .integer(minimum: 0, maximum: 1000), "Ticks between a click and the purchase it leads to.", default: 2),
            Property("returnSensitivity", .number(minimum: 0, maximum: 1), "Churn: how much an unsatisfied user's chance of coming back drops (0: not at all, 1: to zero).", default: 0.0),
            Property("segments", .integer(minimum: 1, maximum: 255), "Observable user segments (a user feature).", default: 4),
            Property("regions", .integer(minimum: 1, maximum: 255), "Observable user regions (a user feature).", default: 8),
            Property("interests", .object(ObjectSchema("Each user's mixture of interests (topics).", [
                Property("active", .integer(minimum: 1, maximum: 8), "Active interests per user.", default: 3),
                Property("dormant", .integer(minimum: 0, maximum: 8), "Dormant interests per user: they wake only after exposure and a click.", default: 2),
                Property("drift", .number(minimum: 0, maximum: 2), "Per-tick standard deviation of the random walk of each active interest's log-weight.", default: 0.05),
                Property("decay", .number(minimum: 0, maximum: 2), "Log-weight an active interest loses in a tick without engagement.", default: 0.02),
                Property("reinforcement", .number(minimum: 0, maximum: 5), "Log-weight an interest gains per click on one of its items.", default: 0.1),
                Property("dormantAppeal", .number(minimum: 0, maximum: 1), "How much a dormant interest attracts, relative to an average active one, before it wakes.", default: 0.5),
                Property("dormantBelow", .number(minimum: 0, maximum: 1), "An active interest whose share falls below this goes dormant.", default: 0.02),
                Property("wakeShare", .number(minimum: 0, maximum: 1, exclusiveMinimum: true), "Share a dormant interest takes when it wakes.", default: 0.2),
            ])), "Each user's mixture of interests (topics).", default: [:]),
            Property("fatigue", .object(ObjectSchema("Repeated exposure to one top category lowers response.", [
                Property("weight", .number(minimum: 0, maximum: 10), "Click log-odds lost per unit of fatigue.", default: 0.3),
                Property("decay", .number(minimum: 0, maximum: 1), "Share of fatigue kept from one tick to the next.", default: 0.7),
            ])), "Repeated exposure to one top category lowers response.", default: [:]),
            Property("positionBias", .tagged(positionBias), positionBias.summary, default: ["type": "position-based"]),
            Property("response", .object(ObjectSchema("How affinity becomes clicks, view seconds and purchases.", [
                Property("clickBias", .number(minimum: -20, maximum: 20), "Click log-odds of an average item.", default: -2.5),
                Property("affinityScale", .number(minimum: 0, maximum: 100), "Click log-odds per unit of true affinity (user preference . item topic vector).", default: 6.0),
                Property("qualityWeight", .number(minimum: 0, maximum: 20), "Click log-odds per unit of quality above 0.5.", default: 1.0),
                Property("popularityWeight", .number(minimum: 0, maximum: 20), "Click log-odds per unit of the popularity prior.", default: 0.5),
                Property("completionBias", .number(minimum: -20, maximum: 20), "Log-odds of watching an item to the end at zero affinity.", default: -0.5),
                Property("completionScale", .number(minimum: 0, maximum: 100), "Completion log-odds per unit of affinity.", default: 4.0),
                Property("purchaseBias", .number(minimum: -20, maximum: 20), "Purchase log-odds after a click, for an average item.", default: -3.0),
                Property("purchaseAffinityScale", .number(minimum: 0, maximum: 100), "Purchase log-odds per unit of affinity.", default: 4.0),
                Property("priceSensitivity", .number(minimum: 0, maximum: 10), "Median purchase log-odds lost per unit of log(price / median price).", default: 1.0),
            ])), "How affinity becomes clicks, view seconds and purchases.", default: [:]),
            Property("history", .object(ObjectSchema("Each user's lifelong history, generated before tick 0 by the same model.", [
                Property("median", .integer(minimum: 0, maximum: 100_000), "Median history length (behaviours).", default: 1000),
                Property("spread", .number(minimum: 0, maximum: 3), "Log-normal sigma of history length.", default: 1.0),
                Property("max", .integer(minimum: 1, maximum: 100_000), "Cap on history length.", default: 10_000),
                Property("episodeLength", .number(minimum: 1, maximum: 10_000), "Mean length of an interest episode: a run of behaviours on one interest.", default: 30.0),
                Property("entriesPerTick", .number(minimum: 0, maximum: 1_000, exclusiveMinimum: true), "Behaviours per simulated past tick (sets history timestamps).", default: 4.0),
            ])), "Each user's lifelong history, generated before tick 0 by the same model.", default: [:]),
        ])), "The simulated users.", default: [:]),
        Property("catalog", .object(ObjectSchema("The items.", [
            Property("items", .integer(minimum: 1, maximum: 10_000_000), "Items at tick 0.", default: 5000),
            Property("topCategories", .integer(minimum: 1, maximum: 1000), "Top-level categories of the two-level taxonomy.", default: 8),
            Property("subcategories", .integer(minimum: 1, maximum: 1000), "Subcategories per top-level category.", default: 6),
            Property("topics", .integer(minimum: 1, maximum: 10_000), "Latent topics (the interests users have).", default: 32),
            Property("topicDim", .integer(minimum: 1, maximum: 1024), "Dimension of topic vectors.", default: 16),
            Property("topicNoise", .number(minimum: 0, maximum: 10), "How far an item's vector strays from its topic's centroid.", default: 0.35),
            Property("popularityExponent", .number(minimum: 0, maximum: 5, exclusiveMinimum: true), "Zipf exponent of the popularity prior.", default: 1.0),
            Property("medianPrice", .number(minimum: 0, exclusiveMinimum: true), "Median item price (GMV per purchase).", default: 25.0),
            Property("priceSpread", .number(minimum: 0, maximum: 5), "Log-normal sigma of category median prices.", default: 0.8),
            Property("itemPriceSpread", .number(minimum: 0, maximum: 5), "Log-normal sigma of item prices within a category.", default: 0.4),
            Property("medianDurationSeconds", .number(minimum: 0, exclusiveMinimum: true), "Median item duration in seconds (view time if watched to the end).", default: 60.0),
            Property("durationSpread", .number(minimum: 0, maximum: 5), "Log-normal sigma of durations (within and across categories).", default: 0.5),
            Property("vocabulary", .integer(minimum: 1, maximum: 10_000_000), "Content tokens; each topic draws most of its tokens from a slice of its own.", default: 5000),
            Property("tokensPerItem", .integer(minimum: 1, maximum: 255), "Content tokens per item.", default: 12),
            Property("arrivalsPerTick", .number(minimum: 0, maximum: 1_000_000), "Mean number of new items per tick (Poisson): cold start.", default: 5.0),
            Property("retireProbability", .number(minimum: 0, maximum: 1), "Chance per tick that a live item retires (no longer retrievable).", default: 0.0),
            Property("seed", .nullable(.integer(minimum: 0, maximum: Int64.max)), "The catalog's own seed (its items, topics, arrivals and retirements); null: the scenario's seed. Pinned, runs over seeds (`--seeds`, `calibrate`) draw new users and new experiment draws in one world, whose true lifts a large run can measure.", default: .null),
        ])), "The items.", default: [:]),
        Property("arms", .array(.object(arm), minItems: 1, maxItems: 64), "The arms of the experiment.", required: true),
        Property("experiment", .object(ObjectSchema("How users are split and compared.", [
            Property("salt", .string(minLength: 1), "Mixed into the user-to-arm hash; change it to reshuffle users.", default: "recstream"),
            Property("control", .nullable(.string(minLength: 1)), "The arm lifts are measured against (default: the first arm).", default: .null),
            Property("design", .string(oneOf: Design.allCases.map(\.rawValue)), "split: users divided among the arms by their shares, as production must. paired: every arm serves its own copy of the whole population on common random numbers (after one shared warm-up), and each user's difference between copies is the unit; intervals are far narrower, and a run costs one population per arm. Shares still sum to 1 (a split run of the file uses them) but divide no one.", default: "split"),
            Property("comparisons", .array(.object(ObjectSchema("A pair of arms to compare.", [
                Property("treatment", .string(minLength: 1), "The arm whose lift is reported.", required: true),
                Property("baseline", .string(minLength: 1), "The arm it is measured against.", required: true),
            ]))), "The pairs the report compares, each a row of lifts; p-values are Holm-adjusted over all of them. Empty: each arm against the control.", default: []),
            Property("stopWhen", .nullable(.object(ObjectSchema("End the run early once a lift is decided.", [
                Property("metric", .string(oneOf: ["viewSeconds", "gmv", "clicks", "impressions", "purchases", "activeTicks"]), "The per-user metric whose lift decides.", default: "viewSeconds"),
                Property("comparison", .integer(minimum: 0, maximum: 4096), "Which reported pair (its index in experiment.comparisons, or among each arm against the control).", default: 0),
                Property("minTicks", .integer(minimum: 1, maximum: 1_000_000), "Ticks after the warm-up before the run may stop.", default: 1),
            ]))), "End the run after the first tick at which the metric's 95% confidence sequence (valid at every tick at once) excludes 0, or at `ticks`. null: run every tick.", default: .null),
            Property("newItemViews", .integer(minimum: 1, maximum: 1_000_000_000), "PV-N: a new item counts as reaching its audience with this many clicks (page views) in an arm within newItemTicks of arriving.", default: 5),
            Property("newItemTicks", .integer(minimum: 1, maximum: 1_000_000), "PV-N's window: ticks after an item arrives.", default: 5),
            Property("regretSample", .number(minimum: 0, maximum: 1), "Share of slates (after the warm-up) whose regret against the oracle is computed; each costs a pass over the live catalog.", default: 0.05),
            Property("warmupTicks", .integer(minimum: 0, maximum: 1_000_000), "Ticks before the split in which the control arm serves everyone and every arm learns from that log; each user's metrics in them are the CUPED covariate. 0: no warm-up, no CUPED.", default: 0),
        ])), "How users are split and compared.", default: [:]),
        Property("metrics", .array(.string(oneOf: Metric.allCases.map(\.rawValue)), minItems: 1), "Metrics the results table shows.",
                 default: .array(Metric.allCases.map { .string($0.rawValue) })),
        Property("offline", .object(ObjectSchema("The offline experiment (`recstream offline`): logged data, each sequence-model arm trained and tested at each dimension.", [
            Property("dims", .array(.integer(minimum: 1, maximum: 1024), minItems: 1), "Embedding dimensions per field to compare.", default: [16, 64, 128]),
            Property("seeds", .integer(minimum: 1, maximum: 100), "Worlds (seeds) per cell; intervals are over them.", default: 3),
            Property("trainSamples", .integer(minimum: 1, maximum: 100_000_000), "Logged training samples per seed.", default: 20_000),
            Property("testSamples", .integer(minimum: 1, maximum: 100_000_000), "Logged test samples per seed.", default: 5000),
            Property("epochs", .integer(minimum: 1, maximum: 100), "Passes over the training samples.", default: 2),
            Property("relevantShare", .number(minimum: 0, maximum: 1), "Logging policy: share of targets drawn from the user's interests (the rest uniformly).", default: 0.5),
            Property("coldShare", .number(minimum: 0, maximum: 0.9), "Share of items (by a hash) no training sample targets; the table adds their test AUC: ranking items a model never trained on.", default: 0),
        ])), "The offline experiment (`recstream offline`).", default: [:]),
        Property("kafka", .object(ObjectSchema("The Kafka transport.", [
            Property("brokers", .nullable(.string(minLength: 1)), "Bootstrap servers of a cluster; null runs the embedded broker. `--brokers` overrides it.", default: .null),
            Property("topicPrefix", .string(minLength: 1), "Topics are <prefix>.requests, .recommendations, .feedback, .dead-letter.", default: "recstream"),
            Property("partitions", .integer(minimum: 1, maximum: 1024), "Partitions per topic; `--partitions` overrides it. Results do not depend on it.", default: 4),
            Property("replicationFactor", .integer(minimum: 1, maximum: 16), "Replication factor of created topics.", default: 1),
            Property("stallTimeoutSeconds", .number(minimum: 0, maximum: 86_400, exclusiveMinimum: true), "How long a phase may wait without progress (a broker away) before the run fails.", default: 30.0),
            Property("properties", .propertyMap, "librdkafka properties for every client, as kcat's -X key=value.", default: [:]),
        ])), "The Kafka transport.", default: [:]),
        Property("output", .object(ObjectSchema("Reports.", [
            Property("directory", .nullable(.string(minLength: 1)), "Where the report files (report.json, report.html, per-tick CSVs) go; `--out` overrides it. null writes no files.", default: .null),
            Property("progress", .boolean, "Show progress on standard error.", default: true),
        ])), "Reports.", default: [:]),
    ])
}
