// What every Daznode page shares: the API helper (named `request`: `api` is LNbits' own)
// and formatting.
window.DAZNODE_API = '/daznode/api/v1'

window.daznodeMixin = {
  computed: {
    wallet() {
      return this.g.user.wallets[0]
    }
  },
  methods: {
    request(method, path, data, admin) {
      const key = admin ? this.wallet.adminkey : this.wallet.inkey
      return LNbits.api.request(method, window.DAZNODE_API + path, key, data)
    },
    formatSat(v) {
      return Math.round(v).toLocaleString()
    },
    shortKey(pk) {
      return pk ? pk.slice(0, 10) + '…' + pk.slice(-6) : ''
    },
    fromNow(ts) {
      if (!ts) return 'never'
      const diff = Math.round(ts - Date.now() / 1000)
      const abs = Math.abs(diff)
      const text = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` : `${Math.round(abs / 3600)} h`
      return diff >= 0 ? `in ${text}` : `${text} ago`
    },
    errorText(err) {
      const d = err && err.response && err.response.data
      return (d && (d.detail || d.message)) || (err && err.message) || 'Request failed'
    },
    copyText(text) {
      navigator.clipboard && navigator.clipboard.writeText(text)
      Quasar.Notify.create({message: 'Copied', timeout: 800})
    }
  }
}
