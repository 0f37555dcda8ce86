// Daznode network page: the synced graph, node rankings, lookups, score cards,
// neighbourhoods and peer suggestions.
const JOB_POLL_MS = 2000
const RING_RADII = [0, 120, 230]

window.app = Vue.createApp({
  el: '#vue',
  mixins: [windowMixin, window.daznodeMixin, window.daznodePremiumMixin],
  delimiters: ['${', '}'],
  data() {
    return {
      isAdmin: window.DAZNODE_IS_ADMIN === true,
      graph: null,
      graphError: '',
      jobTimer: null,
      upload: {file: null, error: '', sending: false},
      rankings: [],
      rankingsError: '',
      filters: {search: '', min_capacity_sat: 0, min_channels: 0},
      rankingsPagination: {page: 1, rowsPerPage: 25, rowsNumber: 0, sortBy: 'composite', descending: true},
      rankingColumns: [
        {name: 'rank', label: '#', align: 'right', field: 'rank'},
        {name: 'alias', label: 'Node', align: 'left', field: 'alias'},
        {name: 'composite', label: 'Score', align: 'right', field: 'composite', sortable: true},
        {name: 'centrality', label: 'Centrality', align: 'right', field: r => r.components.centrality, sortable: true},
        {name: 'capacity', label: 'Capacity', align: 'right', field: r => r.components.capacity, sortable: true},
        {name: 'fees', label: 'Fees', align: 'right', field: r => r.components.fees, sortable: true},
        {name: 'reliability', label: 'Reliability', align: 'right', field: r => r.components.reliability, sortable: true},
        {name: 'channels', label: 'Channels', align: 'right', field: 'channels', sortable: true},
        {name: 'capacity_sat', label: 'Capacity (sat)', align: 'right', field: 'capacity_sat', sortable: true}
      ],
      lookup: {query: '', options: [], error: '', loading: false},
      card: null,
      hood: null,
      peers: null,
      peersError: '',
      ownPubkey: '',
      ownPeers: null,
      ownPeersError: ''
    }
  },
  computed: {
    jobRunning() {
      return this.graph && ['syncing', 'analysing'].includes(this.graph.job.state)
    },
    statsRows() {
      const s = (this.graph && this.graph.stats) || {}
      return Object.entries(s).map(([k, v]) => ({key: k, label: k.replaceAll('_', ' '), value: typeof v === 'number' ? v.toLocaleString() : String(v)}))
    },
    hoodLayout() {
      // Rings around the centre: direct peers, then their peers; angles spread evenly.
      const h = this.hood
      if (!h) return null
      const rings = [[h.center], [], []]
      for (const n of h.nodes) if (n !== h.center) rings[Math.min(2, h.distance[n] || 2)].push(n)
      const pos = {}
      rings.forEach((ring, i) => ring.forEach((n, j) => {
        const a = (2 * Math.PI * j) / Math.max(1, ring.length) + i * 0.3
        pos[n] = {x: 260 + RING_RADII[i] * Math.cos(a), y: 260 + RING_RADII[i] * Math.sin(a), ring: i}
      }))
      const edges = h.edges.filter(([a, b]) => pos[a] && pos[b]).map(([a, b]) => ({a, b, ...{x1: pos[a].x, y1: pos[a].y, x2: pos[b].x, y2: pos[b].y}}))
      return {pos, edges, nodes: Object.keys(pos), ringSizes: rings.map(r => r.length)}
    }
  },
  methods: {
    async loadGraph() {
      try {
        this.graph = (await this.request('GET', '/graph/status')).data
        this.graphError = ''
      } catch (err) {
        this.graphError = this.errorText(err)
      }
      if (this.jobRunning && !this.jobTimer) {
        this.jobTimer = setInterval(async () => {
          await this.loadGraph()
          if (!this.jobRunning) {
            clearInterval(this.jobTimer)
            this.jobTimer = null
            await this.loadRankings()
          }
        }, JOB_POLL_MS)
      }
    },
    async startJob(path, body) {
      try {
        await this.request('POST', path, body, true)
        await this.loadGraph()
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async sendUpload() {
      if (!this.upload.file) return
      this.upload.sending = true
      this.upload.error = ''
      const form = new FormData()
      form.append('file', this.upload.file)
      try {
        await axios.post(window.DAZNODE_API + '/graph/import', form, {headers: {'X-Api-Key': this.wallet.adminkey}})
        this.upload.file = null
        await this.loadGraph()
      } catch (err) {
        this.upload.error = this.errorText(err)
      } finally {
        this.upload.sending = false
      }
    },
    async loadRankings(props) {
      const p = props ? props.pagination : this.rankingsPagination
      const sort = {rank: 'composite', alias: 'composite'}[p.sortBy] || p.sortBy || 'composite'
      const q = new URLSearchParams({
        page: p.page, size: p.rowsPerPage, sort, order: p.descending ? 'desc' : 'asc',
        min_capacity_sat: this.filters.min_capacity_sat || 0, min_channels: this.filters.min_channels || 0,
        search: this.filters.search || ''
      })
      try {
        const {data} = await this.request('GET', '/scores/rankings?' + q)
        this.rankings = data.data
        this.rankingsPagination = {...p, rowsNumber: data.total}
        this.rankingsError = ''
      } catch (err) {
        this.rankingsError = this.errorText(err)
      }
    },
    async findNodes(val) {
      const q = (val || '').trim()
      if (q.length < 2 || /^0[23][0-9a-fA-F]{64}$/.test(q)) {
        this.lookup.options = []
        return
      }
      try {
        const {data} = await this.request('GET', '/nodes/search?q=' + encodeURIComponent(q))
        this.lookup.options = data.map(n => ({label: `${n.alias || '(no alias)'} · ${this.shortKey(n.pubkey)}`, value: n.pubkey}))
      } catch (err) {
        this.lookup.options = []
      }
    },
    async lookupTyped() {
      const q = (this.lookup.query || '').trim()
      if (!q) return
      if (/^[0-9a-fA-F]{66}$/.test(q) || !this.lookup.options.length) return this.openNode(q)
      return this.openNode(this.lookup.options[0].value)
    },
    async openNode(node) {
      if (!node) return
      this.lookup.options = []
      this.lookup.loading = true
      this.lookup.error = ''
      this.peers = null
      this.peersError = ''
      try {
        const [card, hood] = await Promise.all([
          this.request('GET', '/scores/node/' + node),
          this.request('GET', '/graph/neighbourhood/' + node + '?hops=2&max_nodes=80')
        ])
        this.card = card.data
        this.hood = hood.data
      } catch (err) {
        this.lookup.error = this.errorText(err)
        this.card = null
        this.hood = null
      } finally {
        this.lookup.loading = false
      }
    },
    async loadPeers() {
      try {
        this.peers = (await this.request('GET', '/recommendations/' + this.card.pubkey + '?limit=10')).data.data
      } catch (err) {
        this.peersError = this.errorText(err)
      }
    },
    async loadOwnPeers() {
      try {
        const node = (await this.request('GET', '/node')).data
        this.ownPubkey = node.pubkey
        this.ownPeers = (await this.request('GET', '/recommendations/' + node.pubkey + '?limit=10')).data.data
        this.ownPeersError = ''
      } catch (err) {
        this.ownPeersError = this.errorText(err)
      }
    },
    ringColor(ring) {
      return ['#1976d2', '#26a69a', '#9e9e9e'][ring]
    }
  },
  async created() {
    this.loadPremium()
    await this.loadGraph()
    await this.loadRankings()
    await this.loadOwnPeers()
  },
  beforeUnmount() {
    clearInterval(this.jobTimer)
  }
})
