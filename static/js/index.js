// Daznode dashboard: node, monitor status and channels, refreshed live.
const POLL_MS = 30000
// Recommendations are read after every tick and every profile or rules save: an answer to an
// older request (sent before a save) must not replace a newer one.
let recsRequest = 0

window.app = Vue.createApp({
  el: '#vue',
  mixins: [windowMixin, window.daznodeMixin, window.daznodePremiumMixin],
  delimiters: ['${', '}'],
  data() {
    return {
      node: null,
      status: null,
      channels: [],
      loading: false,
      loadError: '',
      running: false,
      filter: '',
      isAdmin: window.DAZNODE_IS_ADMIN === true,
      pagination: {rowsPerPage: 25, sortBy: 'capacity', descending: true},
      columns: [
        {name: 'peer', label: 'Peer', align: 'left', field: r => r.peer_alias + ' ' + r.channel_id + ' ' + r.peer_id, sortable: true},
        {name: 'capacity', label: 'Capacity (sat)', align: 'right', field: 'capacity_sat', sortable: true},
        {name: 'balance', label: 'Local / remote (sat)', align: 'left', field: 'local_ratio', sortable: true},
        {name: 'fees', label: 'Our fee', align: 'left', field: r => (r.local_policy ? r.local_policy.fee_rate_ppm : -1), sortable: true},
        {name: 'forwards', label: 'Forwards 7 d', align: 'left', field: 'forwards_out_7d', sortable: true},
        {name: 'earned', label: 'Earned 7 d (sat)', align: 'right', field: 'fees_7d_msat', sortable: true},
        {name: 'age', label: 'Age', align: 'right', field: 'age_days', sortable: true}
      ],
      history: {show: false, channel: null, empty: false},
      recs: null,
      recsError: '',
      decisionFilter: [],
      decisionOptions: [
        {label: 'Raise fees', value: 'INCREASE_FEES'},
        {label: 'Lower fees', value: 'DECREASE_FEES'},
        {label: 'Rebalance', value: 'REBALANCE'},
        {label: 'Close', value: 'CLOSE_CHANNEL'},
        {label: 'No action', value: 'NO_ACTION'}
      ],
      recColumns: [
        {name: 'peer', label: 'Channel', align: 'left', field: r => r.peer_alias + ' ' + r.channel_id, sortable: true},
        {name: 'decision', label: 'Decision', align: 'left', field: 'decision', sortable: true},
        {name: 'fee', label: 'Fee', align: 'left', field: r => r.suggested.fee_ppm, sortable: true},
        {name: 'confidence', label: 'Confidence', align: 'right', field: 'confidence', sortable: true},
        {name: 'composite', label: 'Score', align: 'left', field: 'composite', sortable: true}
      ],
      profileName: null,
      profileOptions: ['conservative', 'balanced', 'aggressive'],
      execution: {mode: 'approve'},
      pendingChanges: [],
      actionsDone: [],
      selectedChanges: [],
      batches: [],
      impacts: [],
      applying: false,
      rebalancing: null,
      changeColumns: [
        {name: 'channel', label: 'Channel', align: 'left', field: 'channel_id'},
        {name: 'diff', label: 'Change', align: 'left', field: 'diff'},
        {name: 'origin', label: 'From', align: 'left', field: 'origin'},
        {name: 'confidence', label: 'Confidence', align: 'right', field: r => (r.confidence === null ? '-' : Math.round(r.confidence * 100) + ' %')},
        {name: 'why', label: 'Why', align: 'left', field: 'reasons'}
      ],
      alertsDialog: {show: false, text: '', events: [], error: '', results: [], saving: false},
      limitsDialog: {show: false, data: null, pinned: '', excluded: '', error: '', saving: false},
      profileDialog: {show: false, text: '', error: '', saving: false},
      rulesDialog: {show: false, text: '[]', error: '', chargelnd: '', unsupported: [], saving: false},
      settingsDialog: {show: false, data: {}, error: '', saving: false},
      premiumDialog: {show: false, wallet_id: null, prices: {}, model_base_url: '', model_name: '', model_api_key: '', model_key_set: false, error: '', saving: false},
      levelTrials: null,
      levelColumns: [
        {name: 'percent', label: 'Level', align: 'left', field: 'percent'},
        {name: 'days', label: 'Days (last 28)', align: 'right', field: 'days'},
        {name: 'forwards', label: 'Forwards', align: 'right', field: 'forwards'},
        {name: 'mean', label: 'Earned a day (sat)', align: 'right', field: 'mean_fees_msat'},
        {name: 'bar', label: '', align: 'left', field: 'mean_fees_msat'}
      ],
      levelTrialsSaving: false,
      socket: null,
      pollTimer: null
    }
  },
  computed: {
    filteredRecs() {
      if (!this.recs) return []
      const want = this.decisionFilter
      return this.recs.data.filter(r => !want.length || want.includes(r.decision))
    },
    bestLevel() {
      const seen = (this.levelTrials ? this.levelTrials.levels : []).filter(l => l.days > 0)
      if (!seen.length) return null
      return seen.reduce((a, b) => (b.mean_fees_msat > a.mean_fees_msat ? b : a)).percent
    },
    engineQuiet() {
      const t = this.levelTrials
      return !!(t && t.engine_quiet_from && t.engine_quiet_from <= Date.now() / 1000)
    },
    levelBarMax() {
      return Math.max(0, ...(this.levelTrials ? this.levelTrials.levels.map(l => l.mean_fees_msat) : []))
    },
    stateColor() {
      const s = this.status ? this.status.state : ''
      return {running: 'green', standby: 'blue-grey', failing: 'red'}[s] || 'grey'
    },
    totals() {
      const n = this.node
      return [
        {key: 'channels', label: 'Channels', value: `${n.num_active_channels} / ${n.num_channels}`, hint: 'active / open'},
        {key: 'capacity', label: 'Capacity', value: this.formatSat(n.capacity_sat) + ' sat', hint: ''},
        {key: 'local', label: 'Local balance', value: this.formatSat(n.local_msat / 1000) + ' sat', hint: 'outbound liquidity'},
        {key: 'remote', label: 'Remote balance', value: this.formatSat(n.remote_msat / 1000) + ' sat', hint: 'inbound liquidity'},
        {key: 'fees', label: 'Earned, 7 days', value: this.formatSat(n.fees_7d_msat / 1000) + ' sat', hint: 'routing fees'},
        {key: 'forwards', label: 'Forwards, 7 days', value: String(n.forwards_7d), hint: 'settled'}
      ]
    }
  },
  methods: {
    async refresh() {
      this.loading = true
      try {
        const [status, channels] = await Promise.all([this.request('GET', '/status'), this.request('GET', '/channels')])
        this.status = status.data
        this.channels = channels.data
        this.loadError = ''
        if (this.status.last_success) {
          this.node = (await this.request('GET', '/node')).data
          await this.loadRecs()
          if (this.isAdmin) await Promise.all([this.loadApprovals(), this.loadLevelTrials()])
        }
      } catch (err) {
        this.loadError = this.errorText(err)
      } finally {
        this.loading = false
      }
    },
    async loadRecs() {
      const mine = ++recsRequest
      try {
        const recs = (await this.request('GET', '/recommendations')).data
        if (mine !== recsRequest) return
        this.recs = recs
        this.recsError = ''
      } catch (err) {
        if (mine === recsRequest) this.recsError = this.errorText(err)
      }
    },
    async loadLevelTrials() {
      try {
        this.levelTrials = (await this.request('GET', '/level-trials', null, true)).data
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async setLevelTrials(enabled) {
      this.levelTrialsSaving = true
      try {
        this.levelTrials = (await this.request('PUT', '/level-trials', {enabled}, true)).data
        Quasar.Notify.create({type: 'positive', message: `Price level trials ${enabled ? 'on' : 'off'}`})
        setTimeout(this.refresh, 1500) // the monitor's next pass moves the fees
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      } finally {
        this.levelTrialsSaving = false
      }
    },
    decisionColor(d) {
      return {INCREASE_FEES: 'deep-orange', DECREASE_FEES: 'blue', REBALANCE: 'purple', CLOSE_CHANNEL: 'red-9'}[d] || 'grey-7'
    },
    decisionLabel(d) {
      return {INCREASE_FEES: 'raise fees', DECREASE_FEES: 'lower fees', REBALANCE: 'rebalance', CLOSE_CHANNEL: 'close', NO_ACTION: 'no action'}[d] || d
    },
    async loadProfile() {
      try {
        const {data} = await this.request('GET', '/profile', null, true)
        this.profileName = data.active.name
        if (!this.profileOptions.includes(data.active.name)) this.profileOptions.push(data.active.name)
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async chooseProfile(name) {
      if (!['conservative', 'balanced', 'aggressive'].includes(name)) return // the custom one is active
      try {
        await this.request('PUT', '/profile', {name}, true)
        Quasar.Notify.create({type: 'positive', message: `Profile ${name}`})
        await this.loadRecs()
      } catch (err) {
        LNbits.utils.notifyApiError(err)
        await this.loadProfile()
      }
    },
    async loadApprovals() {
      try {
        const [settings, pending, batches, impacts, applied, failed] = await Promise.all([
          this.request('GET', '/execution', null, true),
          this.request('GET', '/changes?status=pending', null, true),
          this.request('GET', '/batches', null, true),
          this.request('GET', '/impact', null, true),
          this.request('GET', '/changes?status=applied', null, true),
          this.request('GET', '/changes?status=failed', null, true)
        ])
        this.actionsDone = applied.data.concat(failed.data)
          .filter(c => c.kind !== 'policy')
          .sort((a, b) => b.decided_at - a.decided_at)
          .slice(0, 10)
        this.impacts = impacts.data.slice(0, 10)
        this.execution = settings.data
        this.pendingChanges = pending.data
        const ids = new Set(pending.data.map(c => c.id))
        this.selectedChanges = this.selectedChanges.filter(c => ids.has(c.id))
        this.batches = batches.data.slice(0, 10)
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async openAlerts() {
      try {
        const {data} = await this.request('GET', '/alerts', null, true)
        const {events, ...editable} = data
        this.alertsDialog = {show: true, text: JSON.stringify(editable, null, 2), events, error: '', results: [], saving: false}
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async saveAlerts() {
      let body
      try {
        body = JSON.parse(this.alertsDialog.text)
      } catch (e) {
        this.alertsDialog.error = 'Not valid JSON: ' + e.message
        return
      }
      this.alertsDialog.saving = true
      try {
        await this.request('PUT', '/alerts', body, true)
        this.alertsDialog.error = ''
        Quasar.Notify.create({type: 'positive', message: 'Alerts saved'})
      } catch (err) {
        this.alertsDialog.error = this.errorText(err)
      } finally {
        this.alertsDialog.saving = false
      }
    },
    async testAlerts() {
      try {
        const {data} = await this.request('POST', '/alerts/test', null, true)
        this.alertsDialog.results = data.results
        this.alertsDialog.error = ''
      } catch (err) {
        this.alertsDialog.error = this.errorText(err)
      }
    },
    async openLimits() {
      try {
        const {data} = await this.request('GET', '/execution', null, true)
        const ids = flag => data.overrides.filter(o => o[flag]).map(o => o.channel_id).join(', ')
        this.limitsDialog = {show: true, data, pinned: ids('pinned'), excluded: ids('excluded'), error: '', saving: false}
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async saveLimits() {
      const d = this.limitsDialog
      const split = text => text.split(/[\s,]+/).filter(Boolean)
      const overrides = {}
      for (const o of d.data.overrides) overrides[o.channel_id] = {...o, pinned: false, excluded: false}
      for (const id of split(d.pinned)) overrides[id] = {...(overrides[id] || {channel_id: id}), pinned: true}
      for (const id of split(d.excluded)) overrides[id] = {...(overrides[id] || {channel_id: id}), excluded: true}
      const kept = Object.values(overrides).filter(o => o.pinned || o.excluded || Object.keys(o).some(k => !['channel_id', 'pinned', 'excluded'].includes(k) && o[k] !== null))
      d.saving = true
      try {
        await this.request('PUT', '/execution', {min_confidence: d.data.min_confidence, auto_rollback: d.data.auto_rollback, bounds: d.data.bounds, overrides: kept}, true)
        d.show = false
        Quasar.Notify.create({type: 'positive', message: 'Limits saved'})
        await this.loadApprovals()
      } catch (err) {
        d.error = this.errorText(err) // what was typed stays
      } finally {
        d.saving = false
      }
    },
    async setMode(mode) {
      try {
        await this.request('PUT', '/execution', {mode}, true)
        Quasar.Notify.create({type: 'positive', message: `Mode: ${mode}`})
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
      await this.loadApprovals()
    },
    async approveSelected() {
      this.applying = true
      try {
        const ids = this.selectedChanges.map(c => c.id)
        const {data} = await this.request('POST', '/changes/approve', {ids}, true)
        const rejected = Object.values(data.rejected).flat()
        if (data.batch_id || !data.actions.length) {
          Quasar.Notify.create({
            type: data.status === 'SUCCESS' ? 'positive' : 'warning',
            message: `Batch ${data.status.toLowerCase()}` + (data.detail ? `: ${data.detail}` : ''),
            caption: rejected.join('; ')
          })
        }
        for (const a of data.actions) {
          Quasar.Notify.create({
            type: a.ok ? 'positive' : 'warning',
            message: `${a.kind === 'close' ? 'Close' : 'Rebalance'} ${a.channel_id}: ${a.ok ? 'done' : 'not done'}`,
            caption: a.detail
          })
        }
        this.selectedChanges = []
        await this.request('POST', '/monitor/run', null, true) // read the node back now
        await this.refresh()
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      } finally {
        this.applying = false
      }
    },
    async rebalanceNow(rec) {
      const plan = rec.suggested.rebalance
      this.rebalancing = rec.channel_id
      try {
        const {data} = await this.request('POST', '/rebalances', {
          in_channel: rec.channel_id, out_channel: plan.source_channel_id,
          amount_sat: plan.amount_sat, max_fee_ppm: plan.max_fee_ppm
        }, true)
        Quasar.Notify.create({
          type: data.ok ? 'positive' : 'warning',
          message: data.ok ? `Rebalanced ${this.formatSat(plan.amount_sat)} sat for ${Math.round(data.fee_msat / 1000)} sat` : `Rebalance failed: ${data.detail}`
        })
        await this.request('POST', '/monitor/run', null, true)
        await this.refresh()
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      } finally {
        this.rebalancing = null
      }
    },
    async rejectSelected() {
      try {
        await this.request('POST', '/changes/reject', {ids: this.selectedChanges.map(c => c.id), reason: 'rejected on the page'}, true)
        this.selectedChanges = []
        await this.loadApprovals()
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async rollbackBatch(batch) {
      try {
        const {data} = await this.request('POST', `/batches/${batch.id}/rollback`, {}, true)
        Quasar.Notify.create({type: data.status === 'ROLLED_BACK' ? 'positive' : 'warning', message: `Roll back: ${data.status.toLowerCase()}`, caption: data.detail})
        await this.request('POST', '/monitor/run', null, true)
        await this.refresh()
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    batchColor(status) {
      return {SUCCESS: 'green', ROLLED_BACK: 'blue-grey', FAILED: 'red', PARTIAL: 'orange', PENDING: 'grey'}[status] || 'grey'
    },
    async openProfileEditor() {
      try {
        const {data} = await this.request('GET', '/profile/export?format=yaml', null, true)
        this.profileDialog = {show: true, text: data, error: '', saving: false}
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async saveProfileText() {
      this.profileDialog.saving = true
      try {
        const {data} = await this.request('POST', '/profile/import?format=yaml', this.profileDialog.text, true)
        this.profileDialog.show = false
        this.profileName = data.active.name
        if (!this.profileOptions.includes(data.active.name)) this.profileOptions.push(data.active.name)
        Quasar.Notify.create({type: 'positive', message: `Profile ${data.active.name} saved`})
        await this.loadRecs()
      } catch (err) {
        this.profileDialog.error = this.errorText(err) // the text stays as typed
      } finally {
        this.profileDialog.saving = false
      }
    },
    async openRules() {
      try {
        const {data} = await this.request('GET', '/rules', null, true)
        this.rulesDialog = {show: true, text: JSON.stringify(data.rules, null, 2), error: '', chargelnd: '', unsupported: [], saving: false}
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async saveRules() {
      let rules
      try {
        rules = JSON.parse(this.rulesDialog.text || '[]')
      } catch (e) {
        this.rulesDialog.error = 'Not valid JSON: ' + e.message
        return
      }
      this.rulesDialog.saving = true
      try {
        await this.request('PUT', '/rules', rules, true)
        this.rulesDialog.show = false
        Quasar.Notify.create({type: 'positive', message: 'Rules saved'})
        await this.loadRecs()
      } catch (err) {
        this.rulesDialog.error = this.errorText(err) // the text stays as typed
      } finally {
        this.rulesDialog.saving = false
      }
    },
    async convertChargeLnd() {
      try {
        const {data} = await this.request('POST', '/rules/import/chargelnd?mode=preview', this.rulesDialog.chargelnd, true)
        let current = []
        try {
          current = JSON.parse(this.rulesDialog.text || '[]')
        } catch (e) {}
        this.rulesDialog.text = JSON.stringify(current.concat(data.rules), null, 2)
        this.rulesDialog.unsupported = data.unsupported
        this.rulesDialog.error = ''
      } catch (err) {
        this.rulesDialog.error = this.errorText(err)
      }
    },
    async runNow() {
      this.running = true
      try {
        this.status = (await this.request('POST', '/monitor/run', null, true)).data
        await this.refresh()
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      } finally {
        this.running = false
      }
    },
    async openPremium() {
      try {
        const {data} = await this.request('GET', '/premium/settings', null, true)
        this.premiumDialog = {...data, wallet_id: data.wallet_id || null, model_api_key: '', show: true, error: '', saving: false}
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async savePremium() {
      const d = this.premiumDialog
      d.saving = true
      d.error = ''
      const body = {wallet_id: d.wallet_id || '', prices: d.prices, model_base_url: d.model_base_url, model_name: d.model_name}
      if (d.model_api_key) body.model_api_key = d.model_api_key
      try {
        await this.request('PUT', '/premium/settings', body, true)
        d.show = false
        await this.loadPremium()
        Quasar.Notify.create({type: 'positive', message: 'Premium settings saved'})
      } catch (err) {
        d.error = this.errorText(err) // the dialog stays open with what was typed
      } finally {
        d.saving = false
      }
    },
    async openSettings() {
      try {
        const {data} = await this.request('GET', '/settings', null, true)
        this.settingsDialog = {show: true, data, error: '', saving: false}
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    async saveSettings() {
      this.settingsDialog.saving = true
      this.settingsDialog.error = ''
      try {
        await this.request('PUT', '/settings', this.settingsDialog.data, true)
        this.settingsDialog.show = false
        Quasar.Notify.create({type: 'positive', message: 'Settings saved'})
        setTimeout(this.refresh, 1500)
      } catch (err) {
        // Keep the dialog and what was typed; say exactly what is wrong.
        this.settingsDialog.error = this.errorText(err)
      } finally {
        this.settingsDialog.saving = false
      }
    },
    async openHistory(channel) {
      this.history = {show: true, channel, empty: false}
      try {
        const {data} = await this.request('GET', `/channels/${channel.channel_id}/history`)
        this.history.empty = data.points.length === 0
        await this.$nextTick()
        this.drawChart(data.points)
      } catch (err) {
        LNbits.utils.notifyApiError(err)
      }
    },
    drawChart(points) {
      this.destroyChart()
      const canvas = this.$refs.historyCanvas
      if (!canvas || !window.Chart) return
      const labels = points.map(p => new Date(p.ts * 1000).toLocaleString())
      this._chart = new Chart(canvas, {
        type: 'line',
        data: {
          labels,
          datasets: [
            {label: 'Local balance (sat)', data: points.map(p => Math.round(p.local_msat / 1000)), borderColor: '#f7931a', pointRadius: 0, yAxisID: 'y'},
            {label: 'Fee rate (ppm)', data: points.map(p => p.fee_rate_ppm), borderColor: '#5c6bc0', pointRadius: 0, stepped: true, yAxisID: 'y1'}
          ]
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: {x: {ticks: {maxTicksLimit: 8}}, y: {beginAtZero: true}, y1: {position: 'right', beginAtZero: true, grid: {drawOnChartArea: false}}}
        }
      })
    },
    destroyChart() {
      if (this._chart) {
        this._chart.destroy()
        this._chart = null
      }
    },
    connectLive() {
      // The monitor pushes a tick after each pass; polling covers a dropped socket.
      const proto = location.protocol === 'https:' ? 'wss://' : 'ws://'
      try {
        this.socket = new WebSocket(`${proto}${location.host}/api/v1/ws/daznode-monitor`)
        this.socket.onmessage = () => this.refresh()
        this.socket.onclose = () => setTimeout(() => this.connectLive(), 5000)
      } catch (e) {
        this.socket = null
      }
    }
  },
  async created() {
    this.loadPremium()
    await this.refresh()
    if (this.isAdmin) this.loadProfile()
    this.connectLive()
    this.pollTimer = setInterval(this.refresh, POLL_MS)
  },
  beforeUnmount() {
    clearInterval(this.pollTimer)
    if (this.socket) {
      this.socket.onclose = null
      this.socket.close()
    }
  }
})

// The dashboard's three text editors (alerts, profile, rules): a text to edit, the error
// under it (the page's own, e.g. invalid JSON, or the server's; the text stays as typed),
// Save. `name` names the data-test ids: <name>-dialog, <name>-text, <name>-error,
// save-<name>. Slots: the caption, content under the text, buttons before the close button.
window.app.component('daznode-text-editor', {
  props: {
    show: Boolean,
    text: String,
    title: String,
    name: String,
    error: String,
    saving: Boolean,
    label: String,
    saveLabel: String, // default: "Save <name>"
    width: {type: Number, default: 680},
    minHeight: {type: Number, default: 200},
    closeLabel: {type: String, default: 'Cancel'}
  },
  emits: ['update:show', 'update:text', 'save'],
  template: `
    <q-dialog :model-value="show" @update:model-value="v => $emit('update:show', v)">
      <q-card :style="{width: width + 'px', maxWidth: '95vw'}" :data-test="name + '-dialog'">
        <q-card-section>
          <div class="text-h6" v-text="title"></div>
          <div class="text-caption"><slot name="caption"></slot></div>
        </q-card-section>
        <q-card-section>
          <q-input filled type="textarea" autogrow :label="label" :model-value="text"
            @update:model-value="v => $emit('update:text', v)"
            :input-style="{fontFamily: 'monospace', minHeight: minHeight + 'px'}"
            :data-test="name + '-text'"></q-input>
          <q-banner v-if="error" class="bg-red-2 text-black q-mt-sm" rounded :data-test="name + '-error'"><span v-text="error"></span></q-banner>
          <slot></slot>
        </q-card-section>
        <q-card-actions align="right">
          <slot name="actions"></slot>
          <q-btn flat :label="closeLabel" v-close-popup></q-btn>
          <q-btn unelevated color="primary" :label="saveLabel || 'Save ' + name" @click="$emit('save')" :loading="saving" :data-test="'save-' + name"></q-btn>
        </q-card-actions>
      </q-card>
    </q-dialog>`
})
